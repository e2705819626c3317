"""Lesion annotations: LabelMe outlines (polygons) and boxes (rectangles) on a stored image (#20).

A submission names a LabelMe JSON per image (BTXRD's ``Annotations/IMG000001.json``); ingest
checks it against the image it belongs to (:func:`parse_labelme`, at validation, so `bonebase
validate` predicts it) and stores its shapes beside the instance (:func:`store_annotations`, in
the transaction that stores the instance). Points are pixel coordinates of the stored image:
x = column, y = row, from the top-left corner; a rectangle is its two opposite corners.

Annotators' labels are free text: only a vocabulary diagnosis code is kept, anything else is
stored as ``lesion`` (a label could name a patient). Messages name the file and the shape's
index, never a value from the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase import vocab

KINDS = ("polygon", "rectangle")
MAX_SHAPES = 200  # far more than any image holds; bounds what one file can make us store
MAX_POINTS = 10_000  # per shape
MAX_BYTES = 20 * 1024 * 1024  # a LabelMe file may embed the image (imageData): allow for it


@dataclass(frozen=True)
class Shape:
    kind: str  # "polygon" | "rectangle"
    label: str  # a vocabulary diagnosis code, or "lesion"
    points: tuple[tuple[float, float], ...]  # (x, y) in the stored image's pixels

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the shape's bounding box."""
        xs, ys = [p[0] for p in self.points], [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)


class AnnotationError(ValueError):
    """An annotation file that cannot be stored; ``reason`` is a quarantine reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _label(text: object) -> str:
    diagnosis = vocab.lookup_diagnosis(str(text)) if isinstance(text, str) else None
    return diagnosis.code if diagnosis else "lesion"


def _points(raw: object, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_POINTS:
        raise AnnotationError("bad_annotation", f"{where}: 'points' is not a list of 1 to "
                              f"{MAX_POINTS} [x, y] pairs")
    out = []
    for n, p in enumerate(raw):
        if (not isinstance(p, list | tuple) or len(p) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in p)):
            raise AnnotationError("bad_annotation", f"{where}: point {n} is not a pair of numbers [x, y]")
        out.append((float(p[0]), float(p[1])))
    return tuple(out)


def parse_labelme(data: bytes, *, name: str, rows: int, columns: int) -> list[Shape]:
    """The shapes of a LabelMe JSON file drawn on an image of ``rows`` × ``columns`` pixels.

    Raises :class:`AnnotationError`: ``bad_annotation`` (not JSON, not LabelMe, a shape type
    other than polygon/rectangle, a polygon of fewer than 3 points, a rectangle not of 2 points,
    an imageWidth/imageHeight that differs from the image) or ``annotation_outside_image``
    (a point outside the image). ``name`` is the file as the message should name it.
    """
    if len(data) > MAX_BYTES:
        raise AnnotationError("bad_annotation", f"{name}: over {MAX_BYTES // 2**20} MB; "
                              "save it without the embedded image (imageData: null)")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise AnnotationError("bad_annotation", f"{name}: not a JSON file (UTF-8){where}; "
                              "export the annotation from LabelMe again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise AnnotationError("bad_annotation", f"{name}: not a LabelMe file (no 'shapes' list)")
    width, height = doc.get("imageWidth"), doc.get("imageHeight")
    if width is not None and height is not None and (width, height) != (columns, rows):
        raise AnnotationError("bad_annotation", f"{name}: drawn on an image of {width} x {height}"
                              f" pixels, but the image is {columns} x {rows}; annotate this image")
    if len(doc["shapes"]) > MAX_SHAPES:
        raise AnnotationError("bad_annotation", f"{name}: more than {MAX_SHAPES} shapes")
    shapes = []
    for i, raw in enumerate(doc["shapes"]):
        where = f"{name}, shape {i}"
        if not isinstance(raw, dict):
            raise AnnotationError("bad_annotation", f"{where}: not a JSON object")
        kind = raw.get("shape_type") or "polygon"  # LabelMe's default shape is a polygon
        if kind not in KINDS:
            raise AnnotationError("bad_annotation", f"{where}: shape_type is not polygon or "
                                  "rectangle; draw outlines as polygons and boxes as rectangles")
        points = _points(raw.get("points"), where)
        if kind == "polygon" and len(points) < 3:
            raise AnnotationError("bad_annotation", f"{where}: a polygon needs 3 points or more")
        if kind == "rectangle" and len(points) != 2:
            raise AnnotationError("bad_annotation", f"{where}: a rectangle is 2 corner points")
        outside = [n for n, (x, y) in enumerate(points)
                   if not (0 <= x <= columns and 0 <= y <= rows)]
        if outside:
            raise AnnotationError(
                "annotation_outside_image",
                f"{where}: point {outside[0]} lies outside the image ({columns} x {rows} pixels)"
                f"{f' (and {len(outside) - 1} more)' if len(outside) > 1 else ''}; "
                "check that the annotation belongs to this image")
        shapes.append(Shape(kind, _label(raw.get("label")), points))
    return shapes


def store_annotations(conn: Connection, *, instance_id: int, shapes: Sequence[Shape],
                      source: str = "labelme") -> int:
    """Store an instance's shapes, replacing what it had (a re-run stores the same rows)."""
    conn.execute("DELETE FROM lesion_annotations WHERE instance_id = %s", (instance_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO lesion_annotations (instance_id, shape_index, kind, label, points, source)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(instance_id, i, s.kind, s.label, Jsonb([list(p) for p in s.points]), source)
             for i, s in enumerate(shapes)])
    return len(shapes)


def store_for_instances(conn: Connection, *, shapes_by_sha256: Mapping[str, Sequence[Shape]],
                        source: str = "labelme") -> int:
    """:func:`store_annotations` for instances named by the stored file's sha256."""
    if not shapes_by_sha256:
        return 0
    ids = {r["sha256"]: r["id"] for r in conn.execute(
        "SELECT sha256, id FROM instances WHERE sha256 = ANY(%s)", (list(shapes_by_sha256),))}
    return sum(store_annotations(conn, instance_id=ids[sha], shapes=shapes, source=source)
               for sha, shapes in shapes_by_sha256.items() if sha in ids)


def _shapes(rows: Iterable) -> list[Shape]:
    return [Shape(r["kind"], r["label"], tuple((float(x), float(y)) for x, y in r["points"]))
            for r in rows]


def for_instance(conn: Connection, instance_id: int) -> list[Shape]:
    """One stored image's shapes, in the order they were drawn."""
    rows = conn.execute("SELECT kind, label, points FROM lesion_annotations WHERE instance_id = %s"
                        " ORDER BY shape_index", (instance_id,)).fetchall()
    return _shapes(rows)


def by_instance(conn: Connection, instance_ids: Sequence[int]) -> dict[int, list[Shape]]:
    """Shapes of several stored images by instance id (one query; the case page's outlines)."""
    out: dict[int, list[Shape]] = {}
    rows = conn.execute("SELECT instance_id, kind, label, points FROM lesion_annotations"
                        " WHERE instance_id = ANY(%s) ORDER BY instance_id, shape_index",
                        (list(instance_ids),)).fetchall()
    for r in rows:
        out.setdefault(r["instance_id"], []).extend(_shapes([r]))
    return out


def annotations_for(conn: Connection, *, instance_shas: Sequence[str]) -> dict[str, list[Shape]]:
    """Shapes of the stored images named by ``instances.sha256``; images without any are absent."""
    out: dict[str, list[Shape]] = {}
    rows = conn.execute(
        "SELECT i.sha256, a.kind, a.label, a.points FROM lesion_annotations a"
        " JOIN instances i ON i.id = a.instance_id WHERE i.sha256 = ANY(%s)"
        " ORDER BY i.sha256, a.shape_index", (list(instance_shas),)).fetchall()
    for r in rows:
        out.setdefault(r["sha256"], []).extend(_shapes([r]))
    return out
