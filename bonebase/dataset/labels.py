"""Rows of the training view: which instances are in it and the labels each one carries.

One row per accepted instance of a current (non-withdrawn) case in the requested modalities,
with the case's clinical values turned into task labels through :mod:`bonebase.vocab`. The
columns are the contract between the dataset export and the model (see docs/datasets.md).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg import Connection

from bonebase.errors import InputError
from bonebase.vocab import DIAGNOSES, Behaviour, lookup_location, task_label

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
    "lesion_box",
)

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
        raise InputError(
            f"export.intermediate_as is {intermediate_as!r}; use 'benign' or 'malignant'"
        ) from None
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
        os_gct = task_label("os_vs_gct", diagnosis, location)
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
            "benign_vs_malignant": str(
                task_label("benign_vs_malignant", diagnosis, intermediate_as=inter)
            ),
            "os_vs_gct": _text(os_gct),
            "lesion_box": "",
        }
        shape = (r["rows"], r["columns"]) if r["rows"] and r["columns"] else None
        rows.append(ViewRow(r["sha256"], r["source_sha256"], r["object_key"], shape, fields))
    return rows, left_out


def write_labels(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Write labels.csv (rows already sorted) with fixed columns and '\\n' line ends."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def box_after_resize(box: Box, *, rows: int, columns: int, size: int) -> str:
    """A box in source pixels → "x0 y0 x1 y1" in the exported image (see resize_keep_aspect).

    The resize scales the longest side to ``size`` (MONAI rounds the other side) and pads
    symmetrically, with the odd pixel after the image.
    """
    scale = size / max(rows, columns)
    new_h, new_w = int(round(rows * scale)), int(round(columns * scale))
    pad_y, pad_x = (size - new_h) // 2, (size - new_w) // 2
    sx, sy = new_w / columns, new_h / rows
    x0, y0, x1, y1 = box
    out = (x0 * sx + pad_x, y0 * sy + pad_y, x1 * sx + pad_x, y1 * sy + pad_y)
    return " ".join(f"{v:.1f}" for v in out)


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
    rows: Sequence[ViewRow], boxes: Mapping[str, Box] | None, *, size: int
) -> list[dict[str, str]]:
    """labels.csv rows, filling ``lesion_box`` where a source box and the source size are known."""
    out = []
    for row in rows:
        fields = dict(row.fields)
        box = (boxes or {}).get(row.source_sha256)
        if box is not None and row.shape is not None:
            rows_, cols = row.shape
            fields["lesion_box"] = box_after_resize(box, rows=rows_, columns=cols, size=size)
        out.append(fields)
    return out
