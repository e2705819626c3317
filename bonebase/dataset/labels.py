"""Rows of the training view: which instances are in it and the labels each one carries.

One row per accepted instance of a current (non-withdrawn) case in the requested modalities,
with the case's clinical values turned into task labels through :mod:`bonebase.vocab`. The
columns are the contract between the dataset export and the model (see docs/datasets.md).

Task columns hold the class index, empty when the case is outside the task: a normal radiograph
(diagnosis ``normal``) is 0 in ``tumour_vs_normal`` and ``normal_benign_malignant`` and empty in
``benign_vs_malignant`` and ``os_vs_gct``. Lesions are in the exported image's pixels:
``lesion_box`` "x0 y0 x1 y1" (the union of the image's lesions) and ``lesion_outline``, a JSON
list of polygons ``[[[x, y], ...], ...]`` (one per outlined lesion; a box without an outline
adds its four corners), empty when the image has no lesion annotation.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg import Connection

from bonebase.errors import InputError
from bonebase.vocab import DIAGNOSES, TASKS, Behaviour, lookup_location, task_label

LABEL_COLUMNS = (
    "instance_id",
    "image",
    "case_id",
    "patient_id",
    "site",
    "age",
    "sex",
    "location",
    "region",
    "diagnosis",
    "behaviour",
    "benign_vs_malignant",
    "os_vs_gct",
    "tumour_vs_normal",
    "normal_benign_malignant",
    "lesion_box",
    "lesion_outline",
)
# What the model needs of any labels.csv (exports older than the BTXRD tasks lack the rest).
REQUIRED_COLUMNS = LABEL_COLUMNS[:13] + ("lesion_box",)

Box = tuple[float, float, float, float]

_QUERY = """
SELECT i.sha256, i.source_sha256, i.object_key, i.modality, i.rows, i.columns,
       c.case_pseudonym, p.pseudonym AS patient, s.code AS site, c.age, c.sex,
       c.location_code, c.diagnosis_code
  FROM instances i
  JOIN series se ON se.id = i.series_id
  JOIN studies st ON st.id = se.study_id
  JOIN cases c ON c.id = st.case_id
  JOIN patients p ON p.id = c.patient_id
  JOIN sites s ON s.id = c.site_id
 WHERE c.is_current AND i.modality = ANY(%s)
 ORDER BY i.sha256
"""


@dataclass(frozen=True)
class ViewRow:
    """One instance of the view: where its DICOM is and the labels.csv fields (box pending)."""

    instance_id: str
    source_sha256: str
    object_key: str
    shape: tuple[int, int] | None  # source (rows, columns) as ingest recorded them
    fields: dict[str, str]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def query_view(
    conn: Connection, *, modalities: Sequence[str], intermediate_as: str = "benign"
) -> tuple[list[ViewRow], list[str]]:
    """The view's rows sorted by instance id, and the ids left out (no usable diagnosis)."""
    try:
        inter = Behaviour(intermediate_as)
    except ValueError:
        inter = None
    if inter not in (Behaviour.BENIGN, Behaviour.MALIGNANT):
        raise InputError(
            f"export.intermediate_as is {intermediate_as!r}; use 'benign' or 'malignant'"
        )
    if not modalities:
        raise InputError(
            "export.modalities is empty; list the radiograph modalities, e.g. [CR, DX]"
        )
    rows, left_out = [], []
    for r in conn.execute(_QUERY, (list(modalities),)).fetchall():
        diagnosis = DIAGNOSES.get(r["diagnosis_code"] or "")
        if diagnosis is None:
            # Ingest only accepts vocabulary diagnoses; a case without one cannot be labelled.
            left_out.append(r["sha256"])
            continue
        location = lookup_location(r["location_code"])
        fields = {
            "instance_id": r["sha256"],
            "image": f"images/{r['sha256']}.png",
            "case_id": r["case_pseudonym"],
            "patient_id": r["patient"],
            "site": r["site"],
            "age": _text(r["age"]),
            "sex": _text(r["sex"]),
            "location": location.code if location else _text(r["location_code"]),
            "region": location.region if location else "",
            "diagnosis": diagnosis.code,
            "behaviour": diagnosis.behaviour.value,
            **task_fields(diagnosis, location, intermediate_as=inter),
            "lesion_box": "",
            "lesion_outline": "",
        }
        shape = (r["rows"], r["columns"]) if r["rows"] and r["columns"] else None
        rows.append(ViewRow(r["sha256"], r["source_sha256"], r["object_key"], shape, fields))
    return rows, left_out


def task_fields(diagnosis, location, *, intermediate_as: Behaviour) -> dict[str, str]:
    """Every task's label column for one case ("" where the case is outside the task)."""
    return {
        task: _text(task_label(task, diagnosis, location, intermediate_as=intermediate_as))
        for task in TASKS
    }


def write_labels(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Write labels.csv (rows already sorted) with fixed columns and '\\n' line ends."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _resize_map(rows: int, columns: int, size: int) -> tuple[float, float, int, int]:
    """(sx, sy, pad_x, pad_y) of resize_keep_aspect: the longest side scaled to ``size`` (MONAI
    rounds the other side), padded symmetrically with the odd pixel after the image."""
    scale = size / max(rows, columns)
    new_h, new_w = int(round(rows * scale)), int(round(columns * scale))
    return new_w / columns, new_h / rows, (size - new_w) // 2, (size - new_h) // 2


def box_after_resize(box: Box, *, rows: int, columns: int, size: int) -> str:
    """A box in source pixels → "x0 y0 x1 y1" in the exported image (see resize_keep_aspect)."""
    sx, sy, pad_x, pad_y = _resize_map(rows, columns, size)
    x0, y0, x1, y1 = box
    out = (x0 * sx + pad_x, y0 * sy + pad_y, x1 * sx + pad_x, y1 * sy + pad_y)
    return " ".join(f"{v:.1f}" for v in out)


def _shape_part(shape: object, key: str):
    return shape[key] if isinstance(shape, Mapping) else getattr(shape, key)


def lesion_fields(
    shapes: Iterable[object], *, rows: int, columns: int, size: int
) -> dict[str, str]:
    """``lesion_box`` and ``lesion_outline`` of an image from its lesion annotations.

    ``shapes``: annotations (bonebase.ingest.annotations.Shape, or mappings) with ``kind``
    ("polygon" or "rectangle") and ``points`` [(x, y), ...]
    in the stored image's pixels (x along columns). The box is the union of every shape's
    bounds; the outline lists each polygon, and each rectangle that no polygon lies within
    (a box-only lesion) as its four corners.
    """
    sx, sy, pad_x, pad_y = _resize_map(rows, columns, size)
    polygons, rectangles = [], []
    for shape in shapes:
        kind, points = _shape_part(shape, "kind"), _shape_part(shape, "points")
        pts = [(float(x) * sx + pad_x, float(y) * sy + pad_y) for x, y in points]
        if kind == "rectangle" and len(pts) >= 2:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            rectangles.append((min(xs), min(ys), max(xs), max(ys)))
        elif kind == "polygon" and len(pts) >= 3:
            polygons.append(pts)
    if not polygons and not rectangles:
        return {"lesion_box": "", "lesion_outline": ""}
    bounds = [
        *rectangles,
        *(
            (min(p[0] for p in g), min(p[1] for p in g), max(p[0] for p in g), max(p[1] for p in g))
            for g in polygons
        ),
    ]
    box = (min(b[0] for b in bounds), min(b[1] for b in bounds),
           max(b[2] for b in bounds), max(b[3] for b in bounds))  # fmt: skip

    def inside(poly, rect) -> bool:
        cx = sum(p[0] for p in poly) / len(poly)
        cy = sum(p[1] for p in poly) / len(poly)
        return rect[0] <= cx <= rect[2] and rect[1] <= cy <= rect[3]

    outline = [[[round(x, 1), round(y, 1)] for x, y in g] for g in polygons]
    for r in rectangles:
        if not any(inside(g, r) for g in polygons):
            outline.append(
                [
                    [round(r[0], 1), round(r[1], 1)],
                    [round(r[2], 1), round(r[1], 1)],
                    [round(r[2], 1), round(r[3], 1)],
                    [round(r[0], 1), round(r[3], 1)],
                ]
            )
    return {
        "lesion_box": " ".join(f"{v:.1f}" for v in box),
        "lesion_outline": json.dumps(outline, separators=(",", ":")),
    }


def load_truth_boxes(synth_dir: Path) -> dict[str, Box]:
    """Lesion boxes from a synthetic consortium's ``<SITE>/truth.csv``, keyed by the sha256 of
    the submitted file (``instances.source_sha256``), in source pixel coordinates."""
    boxes: dict[str, Box] = {}
    for truth in sorted(Path(synth_dir).glob("*/truth.csv")):
        submission = truth.parent / "submission"
        with truth.open(encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), 2):
                if not row.get("x0"):
                    continue
                try:
                    box = (float(row["x0"]), float(row["y0"]), float(row["x1"]), float(row["y1"]))
                except (KeyError, ValueError):
                    raise InputError(
                        f"{truth} line {n}: x0/y0/x1/y1 must be numbers; regenerate the data"
                    ) from None
                path = submission / row["file"]
                if path.is_file():
                    boxes[hashlib.sha256(path.read_bytes()).hexdigest()] = box
    return boxes


def with_boxes(
    rows: Sequence[ViewRow],
    boxes: Mapping[str, Box] | None,
    *,
    size: int,
    annotations: Mapping[str, Sequence[object]] | None = None,
) -> list[dict[str, str]]:
    """labels.csv rows, filling ``lesion_box`` where a source box and the source size are known,
    and ``lesion_box``/``lesion_outline`` from the stored lesion annotations (by instance id,
    see :func:`lesion_fields`), which take precedence over a truth box."""
    out = []
    for row in rows:
        fields = dict(row.fields)
        box = (boxes or {}).get(row.source_sha256)
        shapes = (annotations or {}).get(row.instance_id)
        if row.shape is not None:
            rows_, cols = row.shape
            if box is not None:
                fields["lesion_box"] = box_after_resize(box, rows=rows_, columns=cols, size=size)
            if shapes:
                fields.update(lesion_fields(shapes, rows=rows_, columns=cols, size=size))
        out.append(fields)
    return out
