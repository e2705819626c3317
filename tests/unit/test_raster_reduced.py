"""A kept JPEG decoded reduced (#20 speed): libjpeg's DCT scaling gives the burned-in text step and
QC the reduced picture they read, without the full-size decode. What is stored and what QC
decides must not change: the stored bytes are the JPEG's own either way, letters or QC figures
near a gate send the file through the full-size path, and QC's figures otherwise stay within
the tolerances below."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from bonebase.dicom import burned_in, raster
from bonebase.dicom.burned_in_image import OCR_SIDE, reduced
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.raster import RasterError, RowValues
from bonebase.ingest import process_raster
from bonebase.ingest.process import process_file
from bonebase.ingest.scan import FileEntry

SECRET = b"q" * 40
ROW = RowValues(row=3, patient_id="PID-31337", accession_number="ACC-4", sex="F", age="41",
                modalities="XR", study_date="20240205")
# QC on the reduced picture against the full-size one: pixel_std (the blank_image gate, far
# from it: near it the full size is read) relative, the saturated share absolute, distinct
# values relative (reported, gates nothing).
STD_REL, SATURATED_ABS, DISTINCT_REL = 0.02, 0.01, 0.05


def _radiograph(rows: int, cols: int, seed: int, noise: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    bone = 120 * np.exp(-((xx - cols / 2 - (yy - rows / 2) * 0.1) ** 2) / (2 * (cols / 9) ** 2))
    grain = np.asarray(Image.fromarray(rng.normal(0, noise, (rows // 8 + 1, cols // 8 + 1))
                                       .astype(np.float32), "F").resize((cols, rows)))
    return np.clip(60 + bone + grain, 0, 255).astype(np.uint8)


def _jpeg(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _wrap(data: bytes, scale) -> raster.Wrapped:
    return raster.wrap(data, name="x.jpg (row 3, image_file)", row=ROW, site="HX",
                       source_sha256="cd" * 32, scale=scale)


@pytest.mark.parametrize("rows, cols, expected", [
    (2503, 1980, 2), (2100, 1600, 2), (4900, 3600, 4), (3600, 2800, 1), (4200, 3000, 1),
    (1000, 800, 1), (5000, 700, 4),
])
def test_the_scale_gives_the_burned_in_step_its_own_reduction(rows, cols, expected):
    s = process_raster.ocr_scale(rows, cols)
    assert s == expected
    full, k = reduced(np.zeros((rows, cols), np.uint8))
    small, k_small = reduced(np.zeros((-(-rows // s), -(-cols // s)), np.uint8))
    assert k == max(1, round(max(rows, cols) / OCR_SIDE))
    assert (s * k_small, small.shape) == (k, full.shape)  # the same picture size, same factor


@pytest.mark.parametrize("rows, cols", [(2503, 1980), (2101, 1599)])
def test_a_kept_jpeg_decoded_reduced_stores_the_same_bytes(rows, cols):
    data = _jpeg(_radiograph(rows, cols, seed=rows))
    whole, half = _wrap(data, None), _wrap(data, lambda r, c: 2)
    assert (whole.step, half.step) == (1, 2)
    assert half.frame.shape == (-(-rows // 2), -(-cols // 2))
    assert (half.dataset.Rows, half.dataset.Columns) == (rows, cols)
    assert raster.to_part10(half.dataset) == raster.to_part10(whole.dataset)
    # DCT scaling against the 2 x 2 block average: within a grey level on a radiograph.
    average, _ = reduced(whole.frame, side=max(rows, cols) // 2)
    assert np.abs(average - half.frame).max() <= 1.0


def test_what_is_decoded_whole_ignores_the_scale():
    arr = _radiograph(600, 500, seed=1)
    assert _wrap(_jpeg(arr, progressive=True), lambda r, c: 2).step == 1  # stored as pixels
    png = io.BytesIO()
    Image.fromarray(arr).save(png, "PNG")
    assert _wrap(png.getvalue(), lambda r, c: 2).step == 1


def test_a_stream_the_decoder_refuses_is_refused_at_reduced_scale_too():
    broken = _jpeg(_radiograph(640, 480, seed=2))
    while b"\xff\xdb" in broken:  # without quantisation tables the scan cannot be decoded
        at = broken.index(b"\xff\xdb")
        broken = broken[:at] + broken[at + 2 + int.from_bytes(broken[at + 2:at + 4], "big"):]
    for scale in (None, lambda r, c: 2, lambda r, c: 4):
        with pytest.raises(RasterError) as caught:
            _wrap(broken, scale)
        assert caught.value.reason == "corrupt_image"


def _entry(path: Path) -> FileEntry:
    data = path.read_bytes()
    return FileEntry(path.name, path, len(data), hashlib.sha256(data).hexdigest(), named=ROW,
                     listing=True)


def _both(tmp_path: Path, picture: np.ndarray, monkeypatch, burned: str | None = "redact"):
    """The file through ingest's step with the reduced decode and with the full-size one only;
    (reduced result, full result, the steps the reduced arm decoded at)."""
    path = tmp_path / "image.jpg"
    path.write_bytes(_jpeg(picture))
    steps: list[int] = []
    real = raster.wrap

    def spy(*args, **kw):
        wrapped = real(*args, **kw)
        steps.append(wrapped.step)
        return wrapped

    monkeypatch.setattr(raster, "wrap", spy)
    deid = Deidentifier(SECRET)
    runs = {}
    for arm, scale in (("reduced", process_raster.ocr_scale), ("full", lambda r, c: 1)):
        monkeypatch.setattr(process_raster, "ocr_scale", scale)
        staging = tmp_path / arm
        staging.mkdir()
        runs[arm] = process_file(_entry(path), deid=deid, site="HX", staging=staging,
                                 burned_in=burned)
        if arm == "reduced":
            reduced_steps = list(steps)
    return runs["reduced"], runs["full"], reduced_steps


def _same_outcome(a, b) -> None:
    assert (a.reason, a.message) == (b.reason, b.message)
    assert a.staged.read_bytes() == b.staged.read_bytes()  # the stored DICOM, byte for byte
    assert a.extra == b.extra  # the receipt's details: burned-in summary, raster notes


def test_a_radiograph_without_text_takes_the_reduced_path_and_stores_the_same(tmp_path,
                                                                                monkeypatch):
    a, b, steps = _both(tmp_path, _radiograph(2240, 1720, seed=7), monkeypatch)
    assert steps == [2]  # decoded once, at half size
    _same_outcome(a, b)
    assert a.record["pixel_std"] == pytest.approx(b.record["pixel_std"], rel=STD_REL)
    assert a.record["saturated_fraction"] == pytest.approx(b.record["saturated_fraction"],
                                                           abs=SATURATED_ABS)
    assert a.record["distinct_values"] == pytest.approx(b.record["distinct_values"],
                                                        rel=DISTINCT_REL)
    assert a.record["aspect_ratio"] == b.record["aspect_ratio"]


def test_near_a_qc_gate_the_full_size_is_read(tmp_path, monkeypatch):
    # Film noise of about 1.2 grey levels on a flat plate: the blank_image gate (std < 1)
    # could come out either way at half size, so QC reads it whole.
    rng = np.random.default_rng(3)
    flat = np.clip(128 + rng.normal(0, 1.2, (2240, 1720)), 0, 255).astype(np.uint8)
    a, b, steps = _both(tmp_path, flat, monkeypatch, burned=None)
    assert steps == [2, 1]
    assert {k: a.record[k] for k in ("pixel_std", "distinct_values", "saturated_fraction")} == \
        {k: b.record[k] for k in ("pixel_std", "distinct_values", "saturated_fraction")}
    assert (a.reason, a.staged.read_bytes()) == (b.reason, b.staged.read_bytes())


@pytest.mark.skipif(not burned_in.tesseract_available(), reason="needs Tesseract")
def test_letters_send_the_image_through_the_full_size_path(tmp_path, monkeypatch):
    # Tesseract's boxes move with a grey level of difference in its picture: an image whose
    # pre-filter finds letters is read from the full-size decode, as before.
    img = Image.fromarray(_radiograph(2240, 1720, seed=11))
    draw = ImageDraw.Draw(img)
    draw.text((40, 50), "DOE JANE 03/11/1961", fill=255, font=ImageFont.load_default(size=60))
    draw.text((1400, 2100), "R", fill=240, font=ImageFont.load_default(size=70))
    reads = []
    real = burned_in.read_rects
    monkeypatch.setattr(burned_in, "read_rects", lambda *a, **kw: reads.append(1) or real(*a, **kw))
    a, b, steps = _both(tmp_path, np.asarray(img), monkeypatch)
    assert steps == [2, 1]
    assert len(reads) == 2  # OCR once per arm: the reduced picture had the pre-filter only
    assert a.extra["burned_in"]["redacted"]
    _same_outcome(a, b)
    assert {k: a.record[k] for k in ("pixel_std", "distinct_values")} == \
        {k: b.record[k] for k in ("pixel_std", "distinct_values")}
