"""The fast encoding path (values encoded during de-identification, raw elements copied by
bonebase.dicom.encode) gives exactly the bytes of the reference path: every new value a pydicom
DataElement, the whole data set written by pydicom's ``save_as``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.encode import encode_head
from bonebase.dicom.read import read_full
from bonebase.errors import BonebaseError
from bonebase.synth import generate
from tests.unit.dicom_samples import PHI, make_instance, streamed_output

SECRET = b"e" * 32
# pydicom's own test files (vendor quirks: implicit VR, big endian, encapsulated and deflated
# data, private and nested sequences, odd lengths) and its character-set files.
TESTDATA = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
            "MR_small_RLE.dcm", "rtdose.dcm", "rtplan.dcm", "rtstruct.dcm",
            "image_dfl.dcm", "priv_SQ.dcm",
            "SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm", "examples_overlay.dcm",
            "reportsi.dcm", "test-SR.dcm", "waveform_ecg.dcm", "empty_charset_LEI.dcm"]
CHARSETS = ["chrGerm.dcm", "chrFrenMulti.dcm", "chrRuss.dcm", "chrArab.dcm", "chrJapMulti.dcm",
            "chrH31.dcm", "chrX1.dcm", "chrSQEncoding.dcm"]


def _reference(path: Path) -> bytes:
    """The slow path: DataElements everywhere, pydicom writes the file."""
    deid = Deidentifier(SECRET, encode_values=False)
    return deid.deidentify(read_full(path), site="HX").to_bytes()


def _fast(path: Path) -> bytes:
    """The ingest path: streamed parts, values encoded in the walk, header by encode_head."""
    return streamed_output(path, Deidentifier(SECRET))


def _compare(path: Path) -> bool:
    """Assert both paths give the same bytes (True), or both refuse the file (False)."""
    try:
        reference = _reference(path)
    except BonebaseError:  # an injected fault: not DICOM, truncated, no PatientID ...
        with pytest.raises(BonebaseError):
            _fast(path)
        return False
    assert _fast(path) == reference, path.name
    return True


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> list[Path]:
    """Every file of a small synthetic consortium (radiographs, CT/MR series, injected faults)."""
    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=2, cases_per_site=22, seed=11, workers=1)
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix not in (".csv", ".json"))


def test_fast_path_equals_reference_on_the_synthetic_consortium(consortium):
    compared = sum(_compare(path) for path in consortium)
    assert compared > 50


def _test_file(name: str, tmp_path: Path) -> Path:
    """A pydicom test file, given what ingestion needs: a PatientID, Pixel Data, file meta."""
    found = get_testdata_file(name) or get_charset_files(name)[0]
    src = pydicom.dcmread(found, force=True)
    src.PatientID = str(src.get("PatientID") or "") or "PID-77123"
    if "PixelData" not in src:
        src.update({"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "Rows": 2,
                    "Columns": 2, "BitsAllocated": 8, "BitsStored": 8, "HighBit": 7,
                    "PixelRepresentation": 0})
        src.add_new(0x7FE00010, "OB", b"\0\1\2\3")
    src.SOPClassUID = src.get("SOPClassUID") or "1.2.840.10008.5.1.4.1.1.7"
    src.SOPInstanceUID = src.get("SOPInstanceUID") or generate_uid(entropy_srcs=[name])
    src.file_meta.MediaStorageSOPClassUID = src.SOPClassUID
    src.file_meta.MediaStorageSOPInstanceUID = src.SOPInstanceUID
    if "TransferSyntaxUID" not in src.file_meta:
        implicit, little = src.original_encoding
        src.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else
            ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    path = tmp_path / name
    src.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("name", TESTDATA + CHARSETS)
def test_fast_path_equals_reference_on_pydicom_test_files(name, tmp_path):
    assert _compare(_test_file(name, tmp_path))


def test_fast_path_equals_reference_on_sequences_private_tags_and_phi(tmp_path):
    path = tmp_path / "sample.dcm"
    make_instance().save_as(path, enforce_file_format=True)
    fast = _fast(path)
    assert fast == _reference(path)
    # and it is de-identified: none of the sample's identifying values is left
    text = fast.decode("latin-1") + fast.decode("utf-8", "replace")
    for key in ("patient_id", "accession", "institution", "station", "serial"):
        assert PHI[key] not in text, key


def test_encode_head_matches_save_as_and_declines_what_it_does_not_handle(tmp_path):
    make_instance().save_as(tmp_path / "in.dcm", enforce_file_format=True)
    ds = Deidentifier(SECRET).deidentify(read_full(tmp_path / "in.dcm"), site="HX").dataset
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert encode_head(ds) == buf.getvalue()
    bare = Dataset(ds)  # no file meta: pydicom must write it
    bare.set_original_encoding(False, True, ds.original_character_set)
    assert encode_head(bare) is None
