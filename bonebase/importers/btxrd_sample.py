"""A BTXRD-shaped folder for tests, the guide and the benchmark (#20): `bonebase import btxrd-sample`.

The layout and columns are BTXRD's as published (Scientific Data, 2025): ``images/IMG000001.jpeg``
(some ``.jpg``), ``Annotations/IMG000001.json`` (LabelMe: a polygon outline and a rectangle box
per tumour image) and ``dataset.csv`` (or ``dataset.xlsx``) with its 37 columns. Pictures are
synthetic (a bone-like band on soft tissue), never real patients. Patients have two views
(frontal, lateral) in consecutive rows, as in BTXRD. With ``faults`` (the default) the folder
holds one of each bad input the importer must survive; :class:`SampleTruth` says which.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bonebase.errors import InputError
from bonebase.vocab import BTXRD_BONES, BTXRD_JOINTS, BTXRD_SUBTYPES

SITE_COLUMNS = (*BTXRD_BONES, *BTXRD_JOINTS)
SUBTYPE_COLUMNS = tuple(BTXRD_SUBTYPES)
COLUMNS = ("image_id", "center", "age", "gender", *SITE_COLUMNS, "tumor", "benign", "malignant",
           *SUBTYPE_COLUMNS, "upper limb", "lower limb", "pelvis", "frontal", "lateral", "oblique")
assert len(COLUMNS) == 37, len(COLUMNS)

# Sites by limb region, as BTXRD marks them (a bone and, near a joint, the joint).
_SITES = {
    "lower limb": (("femur", "knee-joint"), ("tibia", "knee-joint"), ("femur",), ("tibia", "fibula"),
                   ("foot",), ("fibula", "ankle-joint"), ("femur", "tibia", "knee-joint")),
    "upper limb": (("humerus", "shoulder-joint"), ("radius", "wrist-joint"), ("hand",),
                   ("ulna",), ("humerus",)),
    "pelvis": (("hip bone",), ("femur", "hip-joint")),
}
_BENIGN = ("osteochondroma", "multiple osteochondromas", "simple bone cyst", "giant cell tumor",
           "osteofibroma", "synovial osteochondroma", "other bt")
_MALIGNANT = ("osteosarcoma", "other mt")


@dataclass
class SampleTruth:
    """What the generated folder holds, for tests: image ids by what the importer should do."""

    rows: int = 0
    images: int = 0
    normal: int = 0
    benign: int = 0
    malignant: int = 0
    annotated: list[str] = field(default_factory=list)  # images with a good annotation
    patients: dict[str, list[str]] = field(default_factory=dict)  # group -> image ids (truth)
    bad: dict[str, str] = field(default_factory=dict)  # fault -> image id (or file name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _picture(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """A smooth radiograph-like 8-bit picture: soft tissue, a bone band, a brighter lesion."""
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, columns, dtype=np.float32)[None, :]
    tilt = rng.uniform(-0.3, 0.3)
    tissue = 70 + 30 * np.exp(-(x * 1.3) ** 2)
    bone = 110 * np.exp(-(((x - tilt * y) / rng.uniform(0.18, 0.3)) ** 2) * 3)
    lesion = 40 * np.exp(-((x - 0.05) ** 2 + (y - rng.uniform(-0.4, 0.4)) ** 2) / 0.02)
    # Film grain, smooth (interpolated, not blocks: square 8-px blocks have the sharp edges
    # both ways that the burned-in text step takes for letters).
    from PIL import Image

    grain = rng.normal(0, 3, (rows // 8 + 1, columns // 8 + 1)).astype(np.float32)
    noise = np.asarray(Image.fromarray(grain, "F").resize((columns, rows), Image.BICUBIC))
    return np.clip(tissue + bone + lesion + noise, 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "L").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _labelme(image: str, rows: int, columns: int, label: str, rng: random.Random, *,
             outside: bool = False) -> dict:
    cx, cy = columns * rng.uniform(0.4, 0.6), rows * rng.uniform(0.35, 0.65)
    rx, ry = columns * 0.12, rows * 0.1
    outline = [[round(cx + rx * np.cos(a), 1), round(cy + ry * np.sin(a), 1)]
               for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    if outside:
        outline[3] = [columns + 40.0, rows + 25.0]
    box = [[round(cx - rx, 1), round(cy - ry, 1)], [round(cx + rx, 1), round(cy + ry, 1)]]
    return {"version": "5.2.1", "flags": {}, "imagePath": f"../images/{image}", "imageData": None,
            "imageHeight": rows, "imageWidth": columns,
            "shapes": [{"label": label, "points": outline, "group_id": None,
                        "shape_type": "polygon", "flags": {}},
                       {"label": label, "points": box, "group_id": None,
                        "shape_type": "rectangle", "flags": {}}]}


def generate(out: Path, *, images: int = 24, seed: int = 20, size: tuple[int, int] = (320, 400),
             faults: bool = True, fmt: str = "csv", bom: bool = False, delimiter: str = ",",
             crlf: bool = False, zip_to: Path | None = None) -> SampleTruth:
    """Write a BTXRD-shaped folder of ``images`` rows into ``out`` (created; must be empty).

    ``size`` is (columns, rows) of the pictures, varied by up to 10%. ``fmt`` "csv" or "xlsx";
    ``bom``/``delimiter``/``crlf`` write the CSV as Excel on Windows may save it. ``zip_to``
    also packs the folder into a zip as the download comes.
    """
    if images < 6:
        raise InputError("--images: a sample needs at least 6 images (3 centres, 2 views a patient)")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a new folder for the sample")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise InputError(f"{out} is not empty; give a new folder for the sample")
    (out / "images").mkdir()
    (out / "Annotations").mkdir()
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    truth = SampleTruth()
    rows: list[dict[str, object]] = []
    n = 0
    while n < images:
        # One patient: 1-2 views, same centre, age, gender and site, consecutive ids.
        centre = 1 + (len(truth.patients) % 3)
        age, gender = rng.randint(6, 70), rng.choice("MF")
        region = rng.choice(tuple(_SITES))
        site = rng.choice(_SITES[region])
        kind = rng.choices(("normal", "benign", "malignant"), (5, 4, 2))[0]
        subtype = rng.choice(_BENIGN if kind == "benign" else _MALIGNANT) if kind != "normal" else None
        group = []
        for view in ("frontal", "lateral")[: min(rng.choice((1, 2, 2)), images - n)]:
            n += 1
            image_id = f"IMG{n:06d}"
            row: dict[str, object] = {c: 0 for c in COLUMNS}
            row.update({"image_id": f"{image_id}.{'jpg' if n % 7 == 3 else 'jpeg'}",
                        "center": centre, "age": age, "gender": gender, region: 1, view: 1})
            for c in site:
                row[c] = 1
            if subtype:
                row.update({"tumor": 1, kind: 1, subtype: 1})
            rows.append(row)
            group.append(image_id)
            setattr(truth, kind, getattr(truth, kind) + 1)
        truth.patients[f"{centre}-{len(truth.patients)}"] = group
    for row in rows:
        columns, height = (int(s * rng.uniform(0.9, 1.1)) for s in size)
        name = str(row["image_id"])
        pixels = _picture(nrng, height, columns)
        (out / "images" / name).write_bytes(_jpeg(pixels))
        if row["tumor"]:
            stem = name.rsplit(".", 1)[0]
            doc = _labelme(name, height, columns, next(c for c in SUBTYPE_COLUMNS if row[c]), rng)
            (out / "Annotations" / f"{stem}.json").write_text(json.dumps(doc))
            truth.annotated.append(stem)
    if faults:
        _faults(out, rows, truth, rng)
    truth.rows, truth.images = len(rows), len(list((out / "images").iterdir()))
    _write_table(out, rows, fmt=fmt, bom=bom, delimiter=delimiter, crlf=crlf)
    if zip_to is not None:
        _zip(out, zip_to)
    return truth


def _faults(out: Path, rows: list[dict], truth: SampleTruth, rng: random.Random) -> None:
    """One of each bad input of #20, each on its own image (never one the others use)."""
    tumours = [r for r in rows if r["tumor"]]
    normals = [r for r in rows if not r["tumor"]]
    picked: set[str] = set()

    def take(pool: list[dict]) -> dict:
        row = next(r for r in pool if r["image_id"] not in picked)
        picked.add(str(row["image_id"]))
        return row

    def stem(row: dict) -> str:
        return str(row["image_id"]).rsplit(".", 1)[0]

    row = take(tumours)  # two subtypes marked
    other = next(c for c in SUBTYPE_COLUMNS if not row[c])
    row[other] = 1
    truth.bad["two_subtypes"] = stem(row)
    row = take(normals)  # no view marked
    row.update({"frontal": 0, "lateral": 0, "oblique": 0})
    truth.bad["no_view"] = stem(row)
    row = take(normals)  # listed, image missing
    (out / "images" / str(row["image_id"])).unlink()
    truth.bad["missing_image"] = stem(row)
    row = take(normals)  # truncated JPEG
    path = out / "images" / str(row["image_id"])
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    truth.bad["truncated_jpeg"] = stem(row)
    row = take(tumours)  # annotation point outside the image
    path = out / "Annotations" / f"{stem(row)}.json"
    doc = json.loads(path.read_text())
    doc["shapes"][0]["points"][3] = [doc["imageWidth"] + 40.0, doc["imageHeight"] + 25.0]
    path.write_text(json.dumps(doc))
    truth.annotated.remove(stem(row))
    truth.bad["annotation_outside"] = stem(row)
    for bad in truth.bad.values():  # good annotations only: a faulty row's is not stored
        if bad in truth.annotated:
            truth.annotated.remove(bad)
    # An image nobody listed and an annotation of an image nobody has.
    (out / "images" / "IMG900001.jpeg").write_bytes(_jpeg(_picture(np.random.default_rng(1), 300, 260)))
    truth.bad["unlisted_image"] = "IMG900001"
    (out / "Annotations" / "IMG900002.json").write_text(
        json.dumps(_labelme("IMG900002.jpeg", 300, 260, "osteosarcoma", rng)))
    truth.bad["orphan_annotation"] = "IMG900002"


def _write_table(out: Path, rows: list[dict], *, fmt: str, bom: bool, delimiter: str,
                 crlf: bool) -> None:
    if fmt == "xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "dataset"
        ws.append(list(COLUMNS))
        for r in rows:
            ws.append([r[c] for c in COLUMNS])
        wb.save(out / "dataset.xlsx")
        return
    if fmt != "csv":
        raise InputError(f"format {fmt!r}: use csv or xlsx")
    with (out / "dataset.csv").open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter=delimiter,
                                lineterminator="\r\n" if crlf else "\n")
        writer.writeheader()
        writer.writerows(rows)


def _zip(folder: Path, target: Path) -> None:
    import zipfile

    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"BTXRD/{path.relative_to(folder).as_posix()}")
