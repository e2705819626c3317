"""A JPEG or PNG through ingest's per-file step (#20 item 2): de-identified like any file, its
burned-in text blacked out like any radiograph's, refused with a reason when no row names it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont

from bonebase.dicom import burned_in
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.raster import RowValues
from bonebase.ingest.process import process_file
from bonebase.ingest.scan import FileEntry

SECRET = b"r" * 40
ROW = RowValues(row=7, patient_id="PID-55501", accession_number="ACC-88", sex="M", age="19",
                modalities="XR", study_date="20230412")


def _entry(path: Path, named: RowValues | None = ROW, listing: bool = True) -> FileEntry:
    data = path.read_bytes()
    return FileEntry(path.name, path, len(data), hashlib.sha256(data).hexdigest(), named=named,
                     listing=listing)


def _radiograph(rows=600, cols=480, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    bone = 140 * np.exp(-((xx - cols / 2) ** 2) / (2 * (cols / 8) ** 2))
    return np.clip(rng.normal(50, 8, (rows, cols)) + bone, 0, 255).astype(np.uint8)


def test_named_jpeg_is_deidentified_like_any_file(tmp_path):
    path = tmp_path / "ap.jpg"
    Image.fromarray(_radiograph()).save(path, quality=92)
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX",
                          staging=tmp_path, burned_in=None)
    assert result.reason is None, result.message  # not held as a screen capture
    assert result.record["patient_id"] == "PID-55501"  # the row's, for matching (memory only)
    assert result.record["modality"] == "DX" and "pixel_std" in result.record  # QC ran
    stored = result.staged.read_bytes()
    for value in (b"PID-55501", b"ACC-88", b"20230412"):
        assert value not in stored
    ds = pydicom.dcmread(io.BytesIO(stored))
    assert ds.PatientID == result.pseudonym and ds.PatientIdentityRemoved == "YES"
    assert ds.StudyDate != "20230412" and ds.PatientAge == "019Y" and ds.PatientSex == "M"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert result.extra["raster"]["format"] == "JPEG" and result.extra["raster"]["row"] == 7


def test_files_no_row_names_are_refused_with_their_own_reason(tmp_path):
    png = tmp_path / "stray.png"
    Image.fromarray(_radiograph(128, 128)).save(png)
    note = tmp_path / "stray.json"
    note.write_text('{"shapes": []}')
    deid = Deidentifier(SECRET)
    results = [process_file(_entry(p, None), deid=deid, site="HX", staging=tmp_path)
               for p in (png, note)]
    assert [r.reason for r in results] == ["unlisted_image", "unlisted_annotation"]
    assert results[0].message.startswith("stray.png: a PNG image that no manifest row names")
    assert results[0].staged is None
    # A DICOM-only submission (no image_file column): stray pictures are non-DICOM files.
    plain = [process_file(_entry(p, None, listing=False), deid=deid, site="HX",
                          staging=tmp_path) for p in (png, note)]
    assert [r.reason for r in plain] == ["non_dicom", "non_dicom"]
    assert "name it in its case's row" in plain[0].message


@pytest.mark.skipif(not burned_in.tesseract_available(), reason="needs Tesseract")
def test_text_burned_into_a_jpeg_is_blacked_out(tmp_path):
    img = Image.fromarray(_radiograph(700, 560, seed=3))
    letters = Image.new("L", img.size)
    for canvas in (img, letters):
        ImageDraw.Draw(canvas).text((16, 14), "PID-55501", fill=255,
                                    font=ImageFont.load_default(size=30))
    drawn = np.asarray(letters) > 128
    path = tmp_path / "with-text.jpg"
    img.save(path, quality=95)
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX",
                          staging=tmp_path, burned_in="redact")
    assert result.reason is None, result.message
    assert result.extra["burned_in"]["redacted"]
    stored = pydicom.dcmread(result.staged)
    assert stored.pixel_array[drawn].max() == 0  # the ID's white letters are blacked out
    assert stored.BurnedInAnnotation == "NO"


def test_a_jpeg_too_large_to_read_whole_is_refused_unread(tmp_path, monkeypatch):
    from bonebase.ingest import process_raster

    path = tmp_path / "huge.jpg"
    Image.fromarray(_radiograph(128, 128)).save(path)
    monkeypatch.setattr(process_raster, "RASTER_MAX_BYTES", 1000)
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX", staging=tmp_path)
    assert result.reason == "file_too_large"
    assert result.message.startswith("huge.jpg (row 7, image_file): ")
