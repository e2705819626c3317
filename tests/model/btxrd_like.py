"""A tiny exported view shaped like BTXRD after import: three centres (sites), normal, benign and
malignant radiographs, one case per image, pseudo-patients of 1-3 consecutive views, and lesion
outlines (polygons in the exported image's pixels) on the tumour images.

The classes are learnable from the pixels alone: a benign lesion is a bright round blob on the
bone, a malignant one a dark, ragged lytic area; normal bone has neither. Written straight in the
export contract (labels.csv + PNGs), without a database: the export itself is tested elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bonebase.dataset.labels import LABEL_COLUMNS, task_fields, write_labels
from bonebase.vocab import DIAGNOSES, Behaviour, lookup_location

CENTRES = ("BTX1", "BTX2", "BTX3")
DIAGNOSIS = {0: "normal", 1: "osteochondroma", 2: "osteosarcoma"}


def _image(rng: np.random.Generator, cls: int, size: int) -> tuple[np.ndarray, list]:
    """An 8-bit radiograph-like image and its lesion polygon ([] for a normal image)."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = 0.15 + 0.05 * rng.standard_normal((size, size))
    left = size * rng.uniform(0.3, 0.4)
    img[(xx > left) & (xx < left + size * 0.3)] += 0.45  # the bone's shaft
    polygon: list = []
    if cls:
        cx, cy = left + size * 0.15, size * rng.uniform(0.3, 0.7)
        radius = size * rng.uniform(0.09, 0.13)
        angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        ragged = 1.0 if cls == 1 else rng.uniform(0.6, 1.4, len(angles))
        pts = [
            (float(cx + radius * r * np.cos(a)), float(cy + radius * r * np.sin(a)))
            for a, r in zip(angles, np.broadcast_to(ragged, angles.shape), strict=True)
        ]
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon(pts, fill=255)
        inside = np.asarray(canvas) > 0
        img[inside] += 0.35 if cls == 1 else -0.4
        polygon = [[round(x, 1), round(y, 1)] for x, y in pts]
    img = np.clip(img + 0.02 * rng.standard_normal((size, size)), 0, 1)
    return (img * 255).astype(np.uint8), polygon


def make_btxrd_like(out: Path, *, patients_per_centre: int = 24, size: int = 64, seed: int = 5):
    """Write ``out/images/*.png`` and ``out/labels.csv``; returns the labels as a DataFrame."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    image_no = 0
    for centre in CENTRES:
        for p in range(patients_per_centre):
            cls = p % 3  # every class at every centre
            patient = f"{centre}-P{p:03d}"
            age, sex = str(int(rng.integers(8, 70))), "MF"[p % 2]
            for _view in range(int(rng.integers(1, 4))):  # consecutive views of one patient
                image_no += 1
                pixels, polygon = _image(rng, cls, size)
                buf = Image.fromarray(pixels)
                sha = hashlib.sha256(f"{seed}:{image_no}".encode()).hexdigest()
                buf.save(out / "images" / f"{sha}.png")
                diagnosis = DIAGNOSES[DIAGNOSIS[cls]]
                location = lookup_location("distal femur")
                xs = [x for x, _ in polygon]
                ys = [y for _, y in polygon]
                rows.append(
                    {
                        "instance_id": sha,
                        "image": f"images/{sha}.png",
                        "case_id": f"IMG{image_no:06d}",
                        "patient_id": patient,
                        "site": centre,
                        "age": age,
                        "sex": sex,
                        "location": location.code,
                        "region": location.region,
                        "diagnosis": diagnosis.code,
                        "behaviour": diagnosis.behaviour.value,
                        **task_fields(diagnosis, location, intermediate_as=Behaviour.BENIGN),
                        "lesion_box": (
                            f"{min(xs):.1f} {min(ys):.1f} {max(xs):.1f} {max(ys):.1f}" if xs else ""
                        ),
                        "lesion_outline": json.dumps([polygon]) if polygon else "",
                    }
                )
    rows.sort(key=lambda r: r["instance_id"])
    write_labels(out / "labels.csv", rows)
    return pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
