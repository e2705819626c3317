"""Reading submitted files: headers, reason codes for bad files, the pixel-length check."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from bonebase.dicom.read import DicomReadError, header_record, read_full, read_header
from bonebase.errors import InputError
from tests.unit.dicom_samples import PHI, make_instance


def _bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _file(tmp_path: Path, data: bytes, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_read_header_stops_before_pixels(tmp_path: Path) -> None:
    path = _file(tmp_path, _bytes(make_instance()))
    ds = read_header(path)
    assert "PixelData" not in ds and ds.Rows == 8
    assert read_header(str(path)).SOPInstanceUID == ds.SOPInstanceUID


def test_header_record_fields(tmp_path: Path) -> None:
    ds = read_header(_file(tmp_path, _bytes(make_instance())))
    row = header_record(ds, file="site/a.dcm")
    assert row["file"] == "site/a.dcm"
    assert row["patient_id"] == PHI["patient_id"]
    assert row["accession_number"] == PHI["accession"]
    assert (row["rows"], row["columns"], row["bits_allocated"], row["bits_stored"]) == (
        8,
        8,
        16,
        16,
    )
    assert row["pixel_spacing"] == 0.139 and row["pixel_spacing_col"] == 0.139
    assert row["imager_pixel_spacing"] is None
    assert row["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"
    assert row["number_of_frames"] == 1
    assert (row["patient_sex"], row["patient_age"], row["body_part_examined"]) == (
        "F",
        "052Y",
        "KNEE",
    )
    assert row["burned_in_annotation"] == "NO" and row["modality"] == "DX"
    assert row["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.1.1"
    assert row["study_instance_uid"] and row["series_instance_uid"] and row["sop_instance_uid"]


def test_bundled_files_read(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"):
        ds = read_full(get_testdata_file(name))
        assert "PixelData" in ds, name
    assert read_header(get_testdata_file("ExplVR_LitEndNoMeta.dcm")).SOPInstanceUID


@pytest.mark.parametrize(
    "data", [b"this is a text file, not an image\n" * 20, bytes(range(256)) * 4, b"\xff\xd8\xff"]
)
def test_non_dicom_rejected(tmp_path: Path, data: bytes) -> None:
    path = _file(tmp_path, data, "notes.txt")
    with pytest.raises(DicomReadError) as caught:
        read_header(path)
    assert caught.value.reason == "non_dicom"
    assert isinstance(caught.value, InputError)
    assert "notes.txt" in str(caught.value) and "remove" in str(caught.value)


@pytest.mark.parametrize("name", ["IMG0001.dcm", "IMG0001"])
def test_garbled_header_is_corrupt_not_foreign(tmp_path: Path, name: str) -> None:
    """A DICOM file whose 'DICM' marker and first elements were overwritten is damaged DICOM
    (re-export it), not a stray non-DICOM file (remove it): the preamble or the name tells."""
    good = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    garbled = good[:128] + bytes(range(256)) + good[384:]
    path = _file(tmp_path, bytes(128) + garbled[128:], name)
    with pytest.raises(DicomReadError) as caught:
        read_full(path)
    assert caught.value.reason == "corrupt_file"


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "rtplan_truncated.dcm"])
def test_bundled_truncated_files_rejected(name: str) -> None:
    with pytest.raises(DicomReadError) as caught:
        read_full(get_testdata_file(name))
    assert caught.value.reason == "corrupt_file"


@pytest.mark.parametrize("cut", [400, 900, -60])
def test_truncated_file_rejected(tmp_path: Path, cut: int) -> None:
    data = _bytes(make_instance())
    path = _file(tmp_path, data[:cut])
    with pytest.raises(DicomReadError) as caught:
        read_full(path)
    assert caught.value.reason == "corrupt_file"
    assert caught.value.file == str(path)


def test_header_cut_inside_an_element_is_corrupt(tmp_path: Path) -> None:
    data = _bytes(make_instance())
    with pytest.raises(DicomReadError) as caught:
        read_header(_file(tmp_path, data[:700]))
    assert caught.value.reason == "corrupt_file"


def test_pixel_length_mismatch_is_corrupt() -> None:
    ds = make_instance()
    ds.PixelData = b"\x00\x00" * 60  # 8 x 8 x 16 bit needs 128 bytes
    with pytest.raises(DicomReadError, match="Pixel Data holds 120 bytes") as caught:
        read_full(_bytes(ds))
    assert caught.value.reason == "corrupt_file"
    ds.Rows = 4
    ds.PixelData = b"\x00\x00" * 32
    assert read_full(_bytes(ds)).Rows == 4  # matching length passes, bytes input works
    ds.NumberOfFrames = 2  # now 4 x 8 x 2 frames = 128 bytes expected, 64 present
    with pytest.raises(DicomReadError):
        read_full(io.BytesIO(_bytes(ds)))


def test_missing_pixel_data_is_corrupt() -> None:
    ds = make_instance()
    del ds.PixelData
    with pytest.raises(DicomReadError, match="no Pixel Data"):
        read_full(_bytes(ds))


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = make_instance()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
    ds.PixelData = encapsulate([b"\x00" * 16])
    path = _file(tmp_path, _bytes(ds))
    with pytest.raises(DicomReadError, match="MPEG2") as caught:
        read_header(path)
    assert caught.value.reason == "unsupported_transfer_syntax"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "chrRuss.dcm",
                                  "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "chrJapMulti.dcm", "chrSQEncoding.dcm", "rtdose.dcm"])
def test_peek_reads_what_get_reads_and_leaves_elements_raw(name):
    """peek() gives ds.get()'s value for every keyword of a file (ambiguous VRs, sequences and
    missing keywords included), and reading a plain element leaves it raw: de-identification
    copies raw elements byte for byte."""
    from pydicom.data import get_charset_files
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import RawDataElement

    from bonebase.dicom.read import peek

    path = get_testdata_file(name) or get_charset_files(name)[0]
    peeked, got = pydicom.dcmread(path), pydicom.dcmread(path)
    keywords = [e.keyword for e in got if e.keyword] + ["NotAKeyword", "PatientWeight"]
    for keyword in keywords:
        assert peek(peeked, keyword, "missing") == got.get(keyword, "missing"), keyword

    fresh = pydicom.dcmread(path)
    plain = [e.keyword for e in got if e.keyword
             and isinstance(fresh.get_item(e.tag), RawDataElement)  # (0008,0005): read decoded
             and (fresh.get_item(e.tag).VR or dictionary_VR(e.tag)) not in (
                 "SQ", "US or SS", "OB or OW", "US or OW", "US or SS or OW")]
    assert plain
    for keyword in plain:
        peek(fresh, keyword)
    assert all(isinstance(fresh.get_item(k), RawDataElement) for k in plain)
