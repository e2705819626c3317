"""Identifying text burned into the pixels (issue #19): found by OCR, blacked out or held.

The synthetic consortium burns the patient's name, ID, dates and hospital into a share of its
radiographs (corners, several fonts and sizes, low contrast, turned by 90°, MONOCHROME1) with
L/R and view markers. Every such image goes through ingest's process_file: with the default
policy it is stored redacted, and an OCR pass over the stored image finds none of the input's
identifying values; with the quarantine policy it is held with reason burned_in_text. Bad
input: undecodable pixels, a multi-frame image, text at the very edge, a scanned form.
Tesseract costs ~0.1-0.5 s an image: the test reads few, small images.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import JPEG2000Lossless, RLELossless

from bonebase.dicom import burned_in
from bonebase.dicom.deid import Deidentifier
from bonebase.ingest.process import process_file
from bonebase.ingest.scan import FileEntry
from bonebase.storage import sha256_file
from bonebase.synth import generate
from tests.unit.dicom_samples import PHI, make_instance

pytestmark = pytest.mark.skipif(not burned_in.tesseract_available(),
                                reason="Tesseract is not installed (apt install tesseract-ocr)")
SECRET = b"consortium-test-secret-0123456789"
IMAGES = 6  # burned-in radiographs of the synthetic consortium read by the test


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=2, cases_per_site=22, seed=11, workers=1, burned_in=0.5)
    truth = [dict(r, site=p.parent.name) for p in sorted(out.glob("*/burned_in.csv"))
             for r in csv.DictReader(p.open(encoding="utf-8"))]
    return out, truth


def _entry(path: Path) -> FileEntry:
    return FileEntry(path.name, path, path.stat().st_size, sha256_file(path))


def _ocr_values(path: Path) -> str:
    ds = pydicom.dcmread(path)
    frame = burned_in.first_frame(ds)
    finding = burned_in.find_text(frame, str(ds.PhotometricInterpretation))
    return " ".join(r.text for r in finding.regions)


def _files(truth: list[dict]) -> list[tuple[str, str]]:
    """Burned-in files of both sites and both photometric kinds, a few of each."""
    seen: dict[str, list[str]] = {}
    for row in truth:
        files = seen.setdefault(row["site"], [])
        if row["file"] not in files and len(files) < IMAGES // 2:
            files.append(row["file"])
    return [(site, f) for site, files in seen.items() for f in files]


def test_synthetic_radiographs_are_redacted_and_unreadable(synth, tmp_path) -> None:
    out, truth = synth
    deid = Deidentifier(SECRET)
    checked = 0
    for site, rel in _files(truth):
        path = out / site / "submission" / rel
        if not path.exists():  # a file fault of the consortium removed it
            continue
        source = pydicom.dcmread(path)
        result = process_file(_entry(path), deid=deid, site=site, staging=tmp_path)
        assert result.reason is None, result.message
        assert result.extra["burned_in"]["redacted"], rel
        stored = pydicom.dcmread(result.staged)
        assert stored.BurnedInAnnotation == "NO"
        assert burned_in.METHOD_TEXT in stored.DeidentificationMethod
        assert stored.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        text = _ocr_values(result.staged).casefold().replace(" ", "")
        drawn = [r for r in truth if r["file"] == rel and r["site"] == site]
        for row in drawn:
            if row["identifying"] == "1":
                value = row["text"].casefold().replace(" ", "").removeprefix("dob")
                assert value not in text, (rel, row["source"])
                x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
                box = stored.pixel_array[y0:y1, x0:x1]
                assert np.ptp(box) == 0, (rel, row["source"])  # one flat black box
        checked += 1
    assert checked >= IMAGES - 1


def test_quarantine_policy_holds_the_image_without_naming_values(synth, tmp_path) -> None:
    out, truth = synth
    site, rel = _files(truth)[0]
    path = out / site / "submission" / rel
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site=site,
                          staging=tmp_path, burned_in="quarantine")
    assert result.reason == "burned_in_text" and result.staged is None
    source = pydicom.dcmread(path)
    for value in (str(source.PatientID), str(source.PatientName).split("^")[0]):
        assert value not in result.message
    assert "value" in result.message  # names which attributes matched


def test_image_without_text_costs_no_ocr() -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:600, :500]
    img = rng.normal(900, 30, (600, 500)) + 1500 * np.exp(-((xx - 250) ** 2) / (2 * 90.0**2))
    finding = burned_in.find_text(np.clip(img, 0, 4095).astype(np.uint16))
    assert not finding.read and not finding.regions


def _drawn(lines: list[tuple[tuple[int, int], str]], shape=(400, 360), size=22) -> np.ndarray:
    canvas = Image.new("L", (shape[1], shape[0]))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=size)
    for pos, text in lines:
        draw.text(pos, text, fill=255, font=font)
    base = np.random.default_rng(2).normal(600, 20, shape)
    return np.where(np.asarray(canvas) > 96, 4000, base).clip(0, 4095).astype(np.uint16)


def _instance(pixels: np.ndarray, *, frames: int = 1, modality: str = "DX") -> pydicom.Dataset:
    ds = make_instance()
    ds.Modality = modality
    stack = np.stack([pixels] * frames) if frames > 1 else pixels
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = stack.astype("<u2").tobytes()
    for keyword in ("WindowCenter", "WindowWidth"):
        ds.pop(keyword, None)
    return ds


def _write(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


NAME_AT_EDGE = [((0, 0), PHI["family"].upper()), ((150, 378), PHI["patient_id"])]


@pytest.mark.parametrize("syntax", [None, RLELossless, JPEG2000Lossless])
def test_edge_text_multi_frame_and_compressed(tmp_path, syntax) -> None:
    """Text touching the image's edge, in every frame of a 3-frame image, stored natively or
    compressed: blacked out in every frame, re-encoded in the same transfer syntax."""
    ds = _instance(_drawn(NAME_AT_EDGE), frames=3)
    if syntax is not None:
        ds.compress(syntax, generate_instance_uid=False)
    path = _write(ds, tmp_path / "multi.dcm")
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX",
                          staging=tmp_path)
    assert result.reason is None, result.message
    stored = pydicom.dcmread(result.staged)
    assert stored.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    frames = stored.pixel_array
    assert frames.shape[0] == 3
    for frame in frames:
        assert np.ptp(frame[0:20, 0:90]) == 0  # the name at the corner, black in each frame
        assert np.ptp(frame[380:398, 152:300]) == 0  # the ID at the bottom edge


def test_scanned_form_is_not_an_image(tmp_path) -> None:
    lines = [((10, 12 + 24 * i), f"Request form line {i} please read carefully") for i in range(15)]
    path = _write(_instance(_drawn(lines), modality="OT"), tmp_path / "form.dcm")
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX", staging=tmp_path)
    assert result.reason == "not_an_image", result.message


def test_undecodable_pixels_are_quarantined(tmp_path) -> None:
    ds = _instance(_drawn(NAME_AT_EDGE))
    ds.compress(RLELossless, generate_instance_uid=False)
    data = bytearray(ds.PixelData)
    data[40:] = b"\xff" * (len(data) - 40)  # a broken RLE stream of the right length
    ds.PixelData = bytes(data)
    path = _write(ds, tmp_path / "broken.dcm")
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX", staging=tmp_path)
    assert result.reason == "corrupt_file" and "decoded" in result.message


def test_apply_on_a_data_set_held_whole() -> None:
    """The gateway's path (a data set in memory, Pixel Data in the de-identified copy)."""
    ds = _instance(_drawn(NAME_AT_EDGE))
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    result = Deidentifier(SECRET).deidentify(ds, site="HX")
    step = burned_in.apply(ds, result)
    assert step is not None and step.redacted
    assert np.ptp(result.dataset.pixel_array[0:20, 0:90]) == 0
    assert np.ptp(ds.pixel_array[0:20, 0:90]) > 0  # the source is left as it was
    assert result.dataset.BurnedInAnnotation == "NO"


def test_text_on_a_later_frame_only_is_found() -> None:
    """Every frame is looked at: a name burned into the third frame of three (the first two
    clean) is blacked out in every frame; the clean frames cost no OCR of their own."""
    clean = _drawn([])
    late = _drawn(NAME_AT_EDGE)
    ds = _instance(clean, frames=3)
    ds.PixelData = np.stack([clean, clean, late]).astype("<u2").tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    assert not burned_in.find_text(burned_in.first_frame(ds)).regions  # frame 1 alone: none
    result = Deidentifier(SECRET).deidentify(ds, site="HX")
    step = burned_in.apply(ds, result)
    assert step is not None and step.redacted
    for frame in result.dataset.pixel_array:
        assert np.ptp(frame[0:20, 0:90]) == 0
        assert np.ptp(frame[380:398, 152:300]) == 0


def test_held_image_preview_frames_the_text_found(tmp_path) -> None:
    """A steward's preview of an image held for burned-in text (policy quarantine): the page
    lists each region's verdict and why (never the text), the PNG frames the name in red."""
    import io

    from bonebase.ingest import quarantine_view
    from bonebase.storage import LocalStore

    path = _write(_instance(_drawn(NAME_AT_EDGE)), tmp_path / "held.dcm")
    store = LocalStore(tmp_path / "objects")
    store.put_file("quarantine/1/held.bin", path)
    item = {"id": 1, "object_key": "quarantine/1/held.bin", "file": "held.dcm", "site": "HX",
            "row_number": None, "reason": "burned_in_text"}
    view = quarantine_view.inspect(store, item)
    assert ("identifying", "the PatientName value") in view.text_regions, view.text_regions
    assert not any(PHI["family"].casefold() in why.casefold() for _, why in view.text_regions)
    png = np.asarray(Image.open(io.BytesIO(quarantine_view.preview_png(store, item, size=400))))
    red = (png[..., 0] > 200) & (png[..., 1] < 80) & (png[..., 2] < 80)
    ys, xs = np.nonzero(red)
    assert ys.size and ys.min() < 30 and xs.min() < 10  # a frame round the name at the corner
    plain = dict(item, reason="corrupt_file")  # other reasons: the image as it was sent
    assert np.asarray(Image.open(io.BytesIO(quarantine_view.preview_png(store, plain)))).ndim == 2


def test_text_across_the_middle_is_found() -> None:
    """Text written in the image's middle (outside the border band) is read and judged."""
    pixels = _drawn([((90, 190), PHI["family"].upper() + " " + PHI["patient_id"])])
    finding = burned_in.find_text(pixels)
    step = burned_in.Step(finding)
    step.judge({PHI["family"]: "PatientName", PHI["patient_id"]: "PatientID"})
    assert any(r.verdict == "identifying" and r.middle for r in step.regions), finding.regions


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm"])
def test_real_radiographs_without_text_keep_their_pixels(name) -> None:
    """pydicom's real computed radiographs (a hand, a chest) carry no burned-in text: bone
    texture the pre-filter passes is read by OCR but nothing is blacked out."""
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    step = burned_in.Step(burned_in.find_text(ds.pixel_array, str(ds.PhotometricInterpretation)))
    step.judge({})
    assert not step.regions, [(r.box, r.why) for r in step.regions]


def test_median_network_equals_pillows_median_filter() -> None:
    """text_contrast's 3 x 3 median (a sorting network) gives Pillow's MedianFilter values,
    edges included, on any shape down to one pixel."""
    from PIL import ImageFilter

    from bonebase.dicom.burned_in_image import median3

    rng = np.random.default_rng(3)
    for h, w in [(1, 1), (1, 7), (5, 1), (2, 2), (37, 53), (120, 90)]:
        img = rng.integers(0, 256, (h, w)).astype(np.uint8)
        expected = np.asarray(Image.fromarray(img).filter(ImageFilter.MedianFilter(3)))
        assert np.array_equal(median3(img), expected), (h, w)


def test_tile_counts_equal_a_plain_sum() -> None:
    """The pre-filter's tiles (edge shares counted in bytes) are those of a plain float mean."""
    from bonebase.dicom.burned_in_image import text_tiles

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (161, 129)).astype(np.uint8)
    for tile in (8, 16):
        found, both = text_tiles(img, tile)
        h, w = (160 // tile) * tile, (128 // tile) * tile
        g = img[:h + 1, :w + 1].astype(np.int16)
        gx, gy = np.abs(np.diff(g, axis=1))[:-1], np.abs(np.diff(g, axis=0))[:, :-1]
        t = max(12.0, 4.0 * float(np.median(gx[::7])) + 6.0)

        def mean(e, h=h, w=w, tile=tile):
            return e.reshape(h // tile, tile, w // tile, tile).mean(axis=(1, 3))

        assert np.array_equal(found, (mean(gx > t) > 0.04) | (mean(gy > t) > 0.04))
        assert np.array_equal(both, (mean((gx > t) & (gy < t / 2)) > 0.02)
                              & (mean((gy > t) & (gx < t / 2)) > 0.02))


@pytest.mark.parametrize("turned", [False, True])
def test_squarish_block_is_read_turned_only_when_upright_leaves_strokes(monkeypatch,
                                                                        turned) -> None:
    """A squarish rectangle is read upright; turned (a second Tesseract call) only when the
    upright reading leaves strokes unread: text written along the edge is still read."""
    from bonebase.dicom import burned_in_ocr
    from bonebase.dicom.burned_in_image import page

    block = Image.new("L", (150, 60))
    draw = ImageDraw.Draw(block)
    draw.text((2, 2), "MULLER", fill=255, font=ImageFont.load_default(size=20))
    draw.text((2, 32), "0042731", fill=255, font=ImageFont.load_default(size=20))
    canvas = Image.new("L", (300, 300), 40)
    canvas.paste(block.rotate(90, expand=True) if turned else block, (20, 60))
    pg = page(np.asarray(canvas))
    u = pg.up
    rect = ((50, 220, 10, 135) if turned else (40, 140, 10, 110))
    rect = tuple(int(v * u) for v in rect)
    assert 1 / 1.5 < (rect[1] - rect[0]) / (rect[3] - rect[2]) < 1.5  # squarish
    sheets = []
    read_sheet = burned_in_ocr._read_sheet
    monkeypatch.setattr(burned_in_ocr, "_read_sheet",
                        lambda crops: sheets.append(len(crops)) or read_sheet(crops))
    texts = [text for _, text in burned_in_ocr.read_rects(pg, [rect])]
    assert "MULLER" in texts and "0042731" in texts, texts
    assert sheets == ([1, 1] if turned else [1, 0])
