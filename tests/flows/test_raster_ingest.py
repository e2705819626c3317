"""A submission of JPEG and PNG images named by the manifest, with LabelMe outlines (#20 item 2),
through the real ingest flow: stored as de-identified Secondary Capture, every bad input one
quarantine item or receipt line naming file, row and field; validate predicts it; re-runs add
nothing. Real Prefect flow, real PostgreSQL."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from bonebase.config import Settings
from bonebase.db.sites import add_site

pytestmark = pytest.mark.slow

HEADER = ("case_id,patient_id,accession_number,sex,age,location,diagnosis,behaviour,modalities,"
          "pathology_confirmed,image_file,annotation_file")
ARTIST = "Marguerite Okonkwo-Vasquez"


def _picture(rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(rows), np.arange(cols)) * (200 / (rows + cols))
    return np.clip(ramp + rng.normal(0, 12, (rows, cols)) + 20, 0, 255).astype(np.uint8)


def _save(path: Path, img: Image.Image, fmt: str, **kw) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path.read_bytes()


def _labelme(path: Path, image: str, rows: int, cols: int, shapes: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "version": "5.2.1", "imagePath": image, "imageData": None, "imageHeight": rows,
        "imageWidth": cols, "flags": {},
        "shapes": [{"label": label, "points": points, "shape_type": kind, "flags": {}}
                   for label, kind, points in shapes]}))


@pytest.fixture(scope="module")
def submission(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jpeg") / "export"
    img = root / "images"
    exif = Image.Exif()
    exif[0x013B] = ARTIST  # an EXIF Artist: a person's name the stored file must not carry
    exif[0x0132] = "2024:01:31 09:12:00"
    _save(img / "r1.jpg", Image.fromarray(_picture(240, 320, 1)), "JPEG", exif=exif, quality=92)
    turned = Image.Exif()
    turned[0x0112] = 6  # displayed turned 90 degrees clockwise: stored upright, 320 x 240
    rgb = np.stack([_picture(240, 320, 2)] * 3, -1)
    _save(img / "r2.jpeg", Image.fromarray(rgb), "JPEG", exif=turned, quality=92)
    _labelme(root / "ann" / "r2.json", "../images/r2.jpeg", 320, 240, [
        ("osteosarcoma", "polygon", [[20, 30], [200, 40], [120, 300]]),
        ("osteosarcoma", "rectangle", [[20, 30], [200, 300]])])
    grey16 = (_picture(200, 180, 3).astype(np.uint16) * 257)
    _save(img / "r3.png", Image.fromarray(grey16), "PNG")
    _labelme(root / "ann" / "r3.json", "../images/r3.png", 200, 180, [
        ("lesion", "polygon", [[10, 10], [500, 20], [30, 150]])])  # x 500: outside 180 columns
    whole = _save(img / "r4.jpg", Image.fromarray(_picture(240, 320, 4)), "JPEG")
    (img / "r4.jpg").write_bytes(whole[: len(whole) // 2])  # truncated in its image data
    cmyk = np.stack([255 - _picture(240, 320, 6)] * 3 + [np.zeros((240, 320), np.uint8)], -1)
    _save(img / "r6a.jpg", Image.fromarray(cmyk, "CMYK"), "JPEG")
    _save(img / "r6b.png", Image.fromarray(_picture(256, 256, 7)), "PNG")
    _save(img / "stray.png", Image.fromarray(_picture(128, 128, 8)), "PNG")
    _labelme(root / "ann" / "orphan.json", "x.jpg", 10, 10, [])
    rows = [
        "JP-1,PID-40417,ACC-1,F,34,distal femur,osteosarcoma,malignant,XR,yes,images/r1.jpg,",
        "JP-2,PID-40418,,M,17,proximal tibia,osteosarcoma,malignant,XR,yes,images/r2.jpeg,"
        "ann/r2.json",
        "JP-3,PID-40419,,F,51,proximal humerus,chondrosarcoma,malignant,XR,yes,images/r3.png,"
        "ann/r3.json",
        "JP-4,PID-40420,,M,22,distal femur,osteosarcoma,malignant,XR,yes,images/r4.jpg,",
        "JP-5,PID-40421,,F,40,distal femur,osteosarcoma,malignant,XR,yes,images/gone.jpg,",
        "JP-6,PID-40422,,M,29,proximal tibia,giant cell tumour of bone,intermediate,XR,yes,"
        "images/r6a.jpg;images/r6b.png,",
    ]
    (root / "manifest.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="j" * 40, env="test")
    s.ensure_home()
    return s


def _items(receipt: dict) -> list[tuple]:
    return sorted((q["reason"], q["row"] or 0, q["file"] or "") for q in receipt["quarantine"])


def test_jpeg_and_png_submission_is_stored_as_deidentified_sc_with_outlines(
        submission, settings, db, prefect_harness):
    from flows.ingest import ingest_submission
    from flows.ingest_check import predict_submission

    add_site(db, code="JP", name="JPEG Hospital")
    db.commit()
    predicted = predict_submission("JP", str(submission), settings=settings)
    receipt = ingest_submission("JP", str(submission), settings=settings)

    assert _items(receipt) == [
        ("annotation_outside_image", 3, "ann/r3.json"),
        ("corrupt_image", 0, "images/r4.jpg"),
        ("image_file_missing", 5, ""),
        ("row_without_images", 4, ""),
        ("unlisted_annotation", 0, "ann/orphan.json"),
        ("unlisted_image", 0, "images/stray.png"),
    ]
    assert _items(predicted) == _items(receipt)  # validate tells the site the same, first
    by_reason = {q["reason"]: q for q in receipt["quarantine"]}
    assert "row 5, image_file: images/gone.jpg is not in the submission" in \
        by_reason["image_file_missing"]["message"]
    assert "images/r4.jpg (row 4, image_file): the JPEG file is corrupt or truncated" in \
        by_reason["corrupt_image"]["message"]
    assert by_reason["annotation_outside_image"]["message"].startswith(
        "ann/r3.json (row 3, annotation_file), shape 0: point 1 lies outside the image")
    counts = receipt["counts"]
    assert (counts["cases_accepted"], counts["files_accepted"], counts["files_stored"]) == (4, 5, 5)
    assert (counts["images_outlined"], counts["outline_shapes"]) == (1, 2)
    assert predicted["counts"]["outline_shapes"] == 2
    converted = sorted((w["row"], w["file"]) for w in receipt["warnings"]
                       if w["reason"] == "image_converted")
    assert converted == [(2, "images/r2.jpeg"), (6, "images/r6a.jpg")]
    # r1's EXIF (APP1) and every JFIF header (APP0) were cut out, and counted.
    assert receipt["deidentified"]["image_metadata"]["APP1"] >= 1
    assert predicted["deidentified"] == receipt["deidentified"]

    stored = db.execute("SELECT object_key, rows, columns FROM instances").fetchall()
    assert len(stored) == 5
    blobs = [_blob(settings, r["object_key"]) for r in stored]
    for blob in blobs:
        assert ARTIST.encode() not in blob and b"PID-404" not in blob and b"ACC-1" not in blob
        ds = pydicom.dcmread(io.BytesIO(blob))
        assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert ds.PatientIdentityRemoved == "YES" and ds.PatientID.startswith("JP-")
    shapes = db.execute("SELECT count(*) AS n FROM lesion_annotations").fetchone()["n"]
    assert shapes == 2  # row 2's outline and box; row 3's was refused, its image kept
    # The upright image: 320 rows x 240 columns, what its LabelMe outline was drawn on.
    assert (320, 240) in {(r["rows"], r["columns"]) for r in stored}

    again = ingest_submission("JP", str(submission), settings=settings)
    assert again.get("already_ingested")
    assert db.execute("SELECT count(*) AS n FROM instances").fetchone()["n"] == 5


def _blob(settings: Settings, key: str) -> bytes:
    from bonebase.storage import open_store

    store = open_store(settings.object_store_url)
    return store.get_bytes(key)
