"""Export the curated training view: one preprocessed PNG per radiograph plus labels.csv.

``export(conn, store, out_dir, size=..., bits=..., modalities=...)`` writes

- ``out_dir/images/<shard>/<instance_id>.png``: radiograph_to_float → resize_keep_aspect →
  to_uint, a lossless grayscale PNG (8- or 16-bit), ``instance_id`` being the stored DICOM's
  sha256. Images are sharded *by arrival*: each export puts the images it renders into one new
  shard ``b<NNNN>`` (the next number), so a dataset version that adds 500 images adds one
  500-image folder and DVC hashes and pushes only that folder (treeverse/dvc#6222: DVC's cost
  grows with the files it walks);
- ``out_dir/labels.csv``: one row per image, sorted by instance_id (columns in
  :data:`bonebase.dataset.labels.LABEL_COLUMNS`; ``image`` is the path under ``out_dir``;
  ``lesion_box`` and ``lesion_outline`` from the stored lesion annotations, in the exported
  image's pixels);
- ``out_dir/export-state.json``: the preprocessing parameters the PNGs were made with.

It is incremental: an image is rendered only when it is missing or the parameters changed
(the PNG name is the content hash of its source, so an existing file with the same parameters
is the same image); images that left the view (withdrawn cases) are deleted from whatever shard
holds them. Other parameters make every PNG stale: all shards go and the full export lands in
one new shard. The same database content and history give byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
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
from bonebase.dicom.pixels import (
    MultiFrameError,
    frame_to_float,
    radiograph_to_float,
    resize_keep_aspect,
    to_uint,
)
from bonebase.errors import BonebaseError, InputError
from bonebase.storage import ObjectStore
from bonebase.vocab import TASKS

log = logging.getLogger(__name__)

STATE_FILE = "export-state.json"
# Bumped when the pixel pipeline itself changes, so that old PNGs are re-rendered.
PIPELINE_VERSION = 1
# zlib level fixed: the bytes of a PNG must not depend on Pillow's default.
PNG_COMPRESS_LEVEL = 6


# Why an image of the view is not exported (counted in the summary and the version's counts).
SKIP_KINDS = {
    "no_diagnosis": "without a vocabulary diagnosis",
    "multi_frame": "multi-frame (radiograph tasks take single-frame images)",
    "unreadable": "unreadable",
}


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
    skip_kinds: dict[str, str] = field(default_factory=dict)  # instance id → one of SKIP_KINDS
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def skip(self, instance_id: str, kind: str, why: str) -> None:
        self.skipped[instance_id] = why
        self.skip_kinds[instance_id] = kind

    def skipped_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(self.skip_kinds.values()).items()))

    def describe(self) -> str:
        kinds = ", ".join(f"{n} {SKIP_KINDS[k]}" for k, n in self.skipped_by_kind().items())
        return (
            f"{self.n_images} images of {self.n_cases} cases ({self.n_patients} patients): "
            f"{self.rendered} rendered, {self.reused} unchanged, {self.removed} removed, "
            f"{len(self.skipped)} skipped" + (f" ({kinds})" if kinds else "")
        )


def params_hash(*, size: int, bits: int) -> str:
    """Hash of everything that decides a PNG's pixels besides its source DICOM."""
    blob = json.dumps({"size": size, "bits": bits, "pipeline": PIPELINE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def render_png(dicom_bytes: bytes, *, size: int, bits: int, frame: int | None = None) -> bytes:
    """The exported PNG of one radiograph (bytes), by the contract's pixel pipeline.

    ``frame`` (1-based) renders one frame of a multi-frame image by the same pipeline, decoding
    only that frame; None takes a single-frame image only (a multi-frame one raises
    :class:`~bonebase.dicom.pixels.MultiFrameError`).
    """
    if frame is None:
        img = radiograph_to_float(pydicom.dcmread(io.BytesIO(dicom_bytes)))
    else:
        source = io.BytesIO(dicom_bytes)
        img = frame_to_float(pydicom.dcmread(source, stop_before_pixels=True), frame, source=source)
    pixels = to_uint(resize_keep_aspect(img, size), bits)
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
        **{task: tally(task) for task in TASKS},
        "diagnosis": tally("diagnosis"),
        "outlined": {"images": sum(1 for r in rows if r.get("lesion_outline"))},
    }


def stored_annotations(conn: Connection, instance_ids: Sequence[str]) -> dict[str, list]:
    """Lesion annotations of the view's instances (by sha256), from the lesion table."""
    from bonebase.ingest.annotations import annotations_for

    return annotations_for(conn, instance_shas=list(instance_ids))


SHARD_PREFIX = "b"
# Written by `bonebase dataset checkout --to`; an export from the database is no recorded
# version, so it must not leave an old version's claim behind (see bonebase.dataset.marker).
MARKER_FILE = "dataset-version.json"


def shard_name(number: int) -> str:
    return f"{SHARD_PREFIX}{number:04d}"


def shard_number(name: str) -> int | None:
    """The number of a shard folder name (``b0007`` → 7), None for anything else."""
    digits = name[len(SHARD_PREFIX) :]
    if name.startswith(SHARD_PREFIX) and len(digits) == 4 and digits.isdigit():
        return int(digits)
    return None


def existing_images(images: Path) -> dict[str, Path]:
    """instance id → PNG, over every shard (and the flat layout of earlier exports)."""
    found: dict[str, Path] = {}
    if not images.is_dir():
        return found
    for entry in os.scandir(images):
        if entry.is_dir() and shard_number(entry.name) is not None:
            for png in os.scandir(entry.path):
                if png.name.endswith(".png") and not png.name.startswith("."):
                    found[png.name[:-4]] = Path(png.path)
        elif entry.name.endswith(".png") and not entry.name.startswith("."):
            found[entry.name[:-4]] = Path(entry.path)  # flat layout: moved into the new shard
    return found


def next_shard(images: Path, taken: Sequence[str] = ()) -> str:
    """The shard after the highest one on disk or in ``taken`` (names a caller still tracks)."""
    names = [e.name for e in os.scandir(images) if e.is_dir()] if images.is_dir() else []
    numbers = [n for n in map(shard_number, [*names, *taken]) if n is not None]
    return shard_name(max(numbers, default=0) + 1)


def _clear_images(images: Path) -> None:
    for path in existing_images(images).values():
        path.unlink()
    for entry in os.scandir(images):
        if entry.is_dir() and shard_number(entry.name) is not None:
            shutil.rmtree(entry.path)


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
    shard: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Bring ``out_dir`` in line with the database's current training view; see the module doc.

    ``boxes`` (lesion boxes by submitted-file sha256, from :func:`load_truth_boxes`) fill the
    ``lesion_box`` column where the database holds no lesion annotation of the image;
    ``workers`` threads render in parallel; new images go to the shard folder ``shard``
    (default: the next number after those on disk); ``progress(done, total)`` is called as
    images are rendered.
    """
    _check_args(size, bits)
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER_FILE).unlink(missing_ok=True)
    view, unlabelled = query_view(conn, modalities=modalities, intermediate_as=intermediate_as)
    summary = ExportSummary()
    for instance_id in unlabelled:
        summary.skip(instance_id, "no_diagnosis", "no vocabulary diagnosis")
    wanted = params_hash(size=size, bits=bits)
    # Numbered before a re-export clears the old shards, so that its shard is a new one too.
    new_dir = images / (shard or next_shard(images))
    if _read_state(out_dir) != wanted:
        # Other parameters made the PNGs there: all are stale. The state goes first so that a
        # crash half-way leaves no claim that the remaining old files are current.
        (out_dir / STATE_FILE).unlink(missing_ok=True)
        _clear_images(images)
    have = existing_images(images)
    if shard_number(new_dir.name) is None:
        raise InputError(f"shard name {new_dir.name!r} is not of the form b0001")
    todo = [r for r in view if r.instance_id not in have]
    summary.reused = len(view) - len(todo)
    for instance_id, path in have.items():
        if path.parent == images:  # flat layout of an earlier export: into the new shard
            new_dir.mkdir(exist_ok=True)
            have[instance_id] = new_dir / path.name
            os.replace(path, have[instance_id])
    if todo:
        new_dir.mkdir(exist_ok=True)

    def render(row: ViewRow) -> tuple[str, tuple[str, str] | None]:
        try:
            data = render_png(store.get_bytes(row.object_key), size=size, bits=bits)
        except MultiFrameError as exc:  # a CT/MR/XA volume: no frame is a radiograph
            return row.instance_id, (
                "multi_frame",
                f"multi-frame image ({exc.frames} frames); "
                "the radiograph tasks take single-frame images",
            )
        except BonebaseError as exc:  # undecodable pixels, a missing object: skip, reported
            return row.instance_id, ("unreadable", str(exc))
        _write_atomic(new_dir / f"{row.instance_id}.png", data)
        return row.instance_id, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (instance_id, problem) in enumerate(pool.map(render, todo), 1):
            if problem:
                log.warning("instance %s not exported: %s", instance_id, problem[1])
                summary.skip(instance_id, *problem)
            else:
                summary.rendered += 1
                have[instance_id] = new_dir / f"{instance_id}.png"
            if progress:
                progress(done, len(todo))
    kept = [r for r in view if r.instance_id not in summary.skipped]
    keep = {r.instance_id for r in kept}
    for instance_id, path in have.items():
        if instance_id not in keep:
            path.unlink()
            summary.removed += 1
    for folder in (e for e in os.scandir(images) if e.is_dir()):
        if shard_number(folder.name) is not None and not any(os.scandir(folder.path)):
            os.rmdir(folder.path)  # an emptied shard goes (the new one when nothing rendered)
    annotations = stored_annotations(conn, [r.instance_id for r in kept])
    labels = with_boxes(kept, boxes, size=size, annotations=annotations)
    for row in labels:
        row["image"] = have[row["instance_id"]].relative_to(out_dir).as_posix()
    write_labels(out_dir / "labels.csv", labels)
    state = {"params_hash": wanted, "size": size, "bits": bits, "pipeline": PIPELINE_VERSION}
    _write_atomic(
        out_dir / STATE_FILE, (json.dumps(state, sort_keys=True, indent=1) + "\n").encode()
    )
    summary.n_images = len(kept)
    summary.n_cases = len({(r["site"], r["case_id"]) for r in labels})
    summary.n_patients = len({(r["site"], r["patient_id"]) for r in labels})
    summary.counts = {**_counts(labels), "skipped": summary.skipped_by_kind()}
    return summary


__all__ = [
    "MARKER_FILE",
    "SKIP_KINDS",
    "ExportSummary",
    "STATE_FILE",
    "existing_images",
    "export",
    "next_shard",
    "params_hash",
    "render_png",
    "shard_name",
    "shard_number",
]
