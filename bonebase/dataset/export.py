"""Export the curated training view: one preprocessed PNG per radiograph plus labels.csv.

``export(conn, store, out_dir, size=..., bits=..., modalities=...)`` writes

- ``out_dir/images/<instance_id>.png``: radiograph_to_float → resize_keep_aspect → to_uint,
  a lossless grayscale PNG (8- or 16-bit), ``instance_id`` being the stored DICOM's sha256;
- ``out_dir/labels.csv``: one row per image, sorted by instance_id (columns in
  :data:`bonebase.dataset.labels.LABEL_COLUMNS`);
- ``out_dir/export-state.json``: the preprocessing parameters the PNGs were made with.

It is incremental: an image is rendered only when it is missing or the parameters changed
(the PNG name is the content hash of its source, so an existing file with the same parameters
is the same image), and images that left the view are deleted. The same database content gives
byte-identical files, so DVC sees no change when nothing changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from psycopg import Connection

from bonebase.dataset.labels import Box, ViewRow, query_view, with_boxes, write_labels
from bonebase.dicom.pixels import radiograph_to_float, resize_keep_aspect, to_uint
from bonebase.errors import BonebaseError, InputError
from bonebase.storage import ObjectStore

log = logging.getLogger(__name__)

STATE_FILE = "export-state.json"
# Bumped when the pixel pipeline itself changes, so that old PNGs are re-rendered.
PIPELINE_VERSION = 1
# zlib level fixed: the bytes of a PNG must not depend on Pillow's default.
PNG_COMPRESS_LEVEL = 6


@dataclass
class ExportSummary:
    """What an export did and what the view holds."""

    n_images: int = 0
    rendered: int = 0
    reused: int = 0
    removed: int = 0
    n_cases: int = 0
    n_patients: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # instance id → why not exported
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def describe(self) -> str:
        return (
            f"{self.n_images} images of {self.n_cases} cases ({self.n_patients} patients): "
            f"{self.rendered} rendered, {self.reused} unchanged, {self.removed} removed, "
            f"{len(self.skipped)} skipped"
        )


def params_hash(*, size: int, bits: int) -> str:
    """Hash of everything that decides a PNG's pixels besides its source DICOM."""
    blob = json.dumps({"size": size, "bits": bits, "pipeline": PIPELINE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def render_png(dicom_bytes: bytes, *, size: int, bits: int) -> bytes:
    """The exported PNG of one radiograph (bytes), by the contract's pixel pipeline."""
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes))
    pixels = to_uint(resize_keep_aspect(radiograph_to_float(ds), size), bits)
    image = Image.fromarray(np.ascontiguousarray(pixels))  # uint8 → "L", uint16 → "I;16"
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    # A crash never leaves a truncated PNG under a valid name: the next run would keep it.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_args(size: int, bits: int) -> None:
    if not isinstance(size, int) or size < 8:
        raise InputError(f"export.size is {size!r}; give the exported side in pixels (>= 8)")
    if bits not in (8, 16):
        raise InputError(f"export.bits is {bits!r}; use 8 or 16")


def _read_state(out_dir: Path) -> str | None:
    try:
        return json.loads((out_dir / STATE_FILE).read_text())["params_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    def tally(key: str) -> dict[str, int]:
        return dict(sorted(Counter(r[key] for r in rows).items()))

    return {
        "site": tally("site"),
        "benign_vs_malignant": tally("benign_vs_malignant"),
        "os_vs_gct": tally("os_vs_gct"),
        "diagnosis": tally("diagnosis"),
    }


def export(
    conn: Connection,
    store: ObjectStore,
    out_dir: Path,
    *,
    size: int,
    bits: int,
    modalities: Sequence[str],
    intermediate_as: str = "benign",
    boxes: Mapping[str, Box] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Bring ``out_dir`` in line with the database's current training view; see the module doc.

    ``boxes`` (lesion boxes by submitted-file sha256, from :func:`load_truth_boxes`) fill the
    ``lesion_box`` column; ``workers`` threads render in parallel; ``progress(done, total)``
    is called as images are rendered.
    """
    _check_args(size, bits)
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    view, unlabelled = query_view(conn, modalities=modalities, intermediate_as=intermediate_as)
    summary = ExportSummary(skipped={i: "no vocabulary diagnosis" for i in unlabelled})
    wanted = params_hash(size=size, bits=bits)
    if _read_state(out_dir) != wanted:
        # Other parameters made the PNGs there: all are stale. The state goes first so that a
        # crash half-way leaves no claim that the remaining old files are current.
        (out_dir / STATE_FILE).unlink(missing_ok=True)
        for png in images.glob("*.png"):
            png.unlink()
    todo = [r for r in view if not (images / f"{r.instance_id}.png").is_file()]
    summary.reused = len(view) - len(todo)

    def render(row: ViewRow) -> tuple[str, str | None]:
        try:
            data = render_png(store.get_bytes(row.object_key), size=size, bits=bits)
        except BonebaseError as exc:  # undecodable pixels, a missing object: skip, reported
            return row.instance_id, str(exc)
        _write_atomic(images / f"{row.instance_id}.png", data)
        return row.instance_id, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (instance_id, problem) in enumerate(pool.map(render, todo), 1):
            if problem:
                log.warning("instance %s not exported: %s", instance_id, problem)
                summary.skipped[instance_id] = problem
            else:
                summary.rendered += 1
            if progress:
                progress(done, len(todo))
    kept = [r for r in view if r.instance_id not in summary.skipped]
    keep_names = {f"{r.instance_id}.png" for r in kept}
    for png in images.iterdir():
        if png.name not in keep_names:
            png.unlink()
            summary.removed += png.suffix == ".png"
    labels = with_boxes(kept, boxes, size=size)
    write_labels(out_dir / "labels.csv", labels)
    state = {"params_hash": wanted, "size": size, "bits": bits, "pipeline": PIPELINE_VERSION}
    _write_atomic(
        out_dir / STATE_FILE, (json.dumps(state, sort_keys=True, indent=1) + "\n").encode()
    )
    summary.n_images = len(kept)
    summary.n_cases = len({(r["site"], r["case_id"]) for r in labels})
    summary.n_patients = len({(r["site"], r["patient_id"]) for r in labels})
    summary.counts = _counts(labels)
    return summary


__all__ = ["ExportSummary", "STATE_FILE", "export", "params_hash", "render_png"]
