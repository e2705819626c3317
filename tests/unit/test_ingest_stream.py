"""Streamed ingestion of a file: the header de-identified, Pixel Data copied from the source.

The output must be the bytes the in-memory path (whole data set read, de-identified, written by
pydicom) gives, and a file far larger than memory allowances must not be read whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bonebase.dicom import stream
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.read import DicomReadError, read_full
from bonebase.ingest.process import process_file
from bonebase.ingest.scan import FileEntry
from tests.unit.dicom_samples import streamed_output

SECRET = b"s" * 32


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "JPEG2000.dcm", "MR_small_RLE.dcm", "rtdose.dcm"])
def test_streamed_output_equals_the_in_memory_path(name, tmp_path):
    path = Path(get_testdata_file(name))
    deid = Deidentifier(SECRET)
    expected = deid.deidentify(read_full(path), site="HX").to_bytes()
    assert streamed_output(path, deid) == expected
    # Files above the in-memory limit are read through the file handle: same bytes.
    big = stream.IN_MEMORY_MAX
    try:
        stream.IN_MEMORY_MAX = 0
        assert streamed_output(path, deid) == expected
    finally:
        stream.IN_MEMORY_MAX = big


def _radiograph(rows: int, cols: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.AccessionNumber = "HX7734921", "Dupont^Marie", "ACC5550192"
    ds.PatientBirthDate, ds.StudyDate, ds.Modality = "19700101", "20200314", "CR"
    ds.InstitutionName = "Hopital Saint-Exemple"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def test_trailing_elements_are_deidentified_and_kept_in_order(tmp_path):
    ds = _radiograph(16, 16)
    ds.PixelData = (np.arange(256, dtype="<u2") * 7).tobytes()
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 6)  # Data Set Trailing Padding: removed (X)
    path = tmp_path / "trailing.dcm"
    ds.save_as(path, enforce_file_format=True)
    deid = Deidentifier(SECRET)
    expected = deid.deidentify(read_full(path), site="HX").to_bytes()
    assert streamed_output(path, deid) == expected
    assert 0xFFFCFFFC not in pydicom.dcmread(io.BytesIO(expected))


def test_truncated_pixel_data_is_a_corrupt_file(tmp_path):
    ds = _radiograph(64, 64)
    ds.PixelData = b"\x01\x02" * 64 * 64
    path = tmp_path / "cut.dcm"
    ds.save_as(path, enforce_file_format=True)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DicomReadError) as err:
        stream.open_parts(path, "cut.dcm")
    assert err.value.reason == "corrupt_file" and "truncated" in str(err.value)


def test_qc_sample_matches_the_decoded_image(tmp_path):
    ds = _radiograph(600, 300)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 4096, size=(600, 300), dtype="<u2") | 0xF000  # junk above BitsStored
    ds.PixelData = pixels.tobytes()
    path = tmp_path / "qc.dcm"
    ds.save_as(path, enforce_file_format=True)
    with stream.open_parts(path, "qc.dcm") as parts:
        sample, aspect = stream.qc_sample(parts)
    assert aspect == 2.0
    assert sample.max() < 4096  # the bits above BitsStored are masked off, as pydicom does
    np.testing.assert_array_equal(sample, read_full(path).pixel_array[::2, ::2])


def _write_large(path: Path, rows: int, cols: int) -> None:
    """A radiograph of rows x cols 16-bit pixels, written in chunks (never whole in memory)."""
    ds = _radiograph(rows, cols)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    band = 256  # rows per chunk
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, rows * cols * 2))
        ramp = (np.arange(cols, dtype="<u2") % 4096)
        for start in range(0, rows, band):
            n = min(band, rows - start)
            fh.write(((ramp[None, :] + np.arange(start, start + n, dtype="<u2")[:, None]) % 4096)
                     .astype("<u2").tobytes())


def test_large_file_is_streamed_not_read_whole(tmp_path):
    rows, cols = 12_000, 16_000  # 384 MB of Pixel Data
    src = tmp_path / "site" / "IMG1"
    src.parent.mkdir()
    _write_large(src, rows, cols)
    size = src.stat().st_size
    assert size > 380e6
    staging = tmp_path / "staging"
    staging.mkdir()
    script = textwrap.dedent(f"""
        import json, resource
        from pathlib import Path
        from bonebase.dicom.deid import Deidentifier
        from bonebase.ingest.process import process_file
        from bonebase.ingest.scan import FileEntry
        import validation.image_qc  # imported before the baseline: it is not the file's cost
        src = Path({str(src)!r})
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = process_file(FileEntry("IMG1", src, src.stat().st_size, "0" * 64),
                         deid=Deidentifier({SECRET!r}), site="HX", staging=Path({str(staging)!r}),
                         max_pixels={rows * cols})  # the default limit is below this image
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"growth_kb": peak - base, "reason": r.reason, "sha": r.sha256,
                          "staged": str(r.staged), "std": r.record["pixel_std"],
                          "size": r.out_size}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["reason"] is None
    assert result["growth_kb"] * 1024 < 64e6, f"peak memory grew by {result['growth_kb']} kB"
    assert result["std"] > 100  # QC ran on the ramp (not a blank image)
    out = Path(result["staged"])
    assert out.stat().st_size == result["size"]
    header = pydicom.dcmread(out, stop_before_pixels=True)
    assert header.PatientID.startswith("HX-")
    assert header.get("PatientBirthDate", "") != "19700101" and "Dupont" not in str(header)
    # Pixel Data is the source's, byte for byte (compared in chunks), and the hash is right.
    src_hash, out_hash, whole = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    for path, digest in ((src, src_hash), (out, out_hash)):
        with open(path, "rb") as fh:
            fh.seek(path.stat().st_size - rows * cols * 2)
            while block := fh.read(1 << 22):
                digest.update(block)
    assert src_hash.digest() == out_hash.digest()
    with open(out, "rb") as fh:
        while block := fh.read(1 << 22):
            whole.update(block)
    assert whole.hexdigest() == result["sha"]


def test_process_file_stages_the_same_bytes_as_in_memory(tmp_path):
    ds = _radiograph(128, 160)
    ds.PixelData = (np.arange(128 * 160, dtype="<u2") % 4000).tobytes()
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    deid = Deidentifier(SECRET)
    r = process_file(FileEntry("a.dcm", path, path.stat().st_size, "0" * 64), deid=deid,
                     site="HX", staging=tmp_path)
    expected = deid.deidentify(read_full(path), site="HX").to_bytes()
    assert r.reason is None and r.staged.read_bytes() == expected
    assert r.sha256 == hashlib.sha256(expected).hexdigest() and r.out_size == len(expected)
