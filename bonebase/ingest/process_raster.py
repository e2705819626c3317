"""A JPEG or PNG named by a manifest row, through the steps of any submitted file.

:mod:`bonebase.dicom.raster` wraps it as DICOM Secondary Capture with a header built from the
row; then :func:`bonebase.ingest.process.deidentify_parts` de-identifies it, runs QC and the
burned-in text step, and it is staged like any DICOM file.
"""

from __future__ import annotations

import os
from pathlib import Path

from bonebase.dicom import raster
from bonebase.dicom.burned_in_image import block_factor
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.stream import open_bytes
from bonebase.ingest.process import (
    FileResult,
    FullSizeNeeded,
    _failed,
    _stage,
    deidentify_parts,
)
from bonebase.ingest.scan import FileEntry

_KIND = {"jpeg": "JPEG", "png": "PNG"}
# QC figures of a JPEG decoded reduced that lie this near a gate are read again at full size:
# averaging lowers pixel_std (blank_image below BLANK_STD_MAX is an error) and can lower the
# saturated share (a warning above SATURATED_MAX), never raise them much.
_QC_MARGIN_STD = 2.0  # x BLANK_STD_MAX
_QC_MARGIN_SATURATED = 0.5  # x SATURATED_MAX
# A JPEG or PNG is read whole (its markers are walked, its pixels decoded once): a radiograph at
# BONEBASE_MAX_PIXELS is a few hundred MB decoded and far less as a file.
RASTER_MAX_BYTES = 256 << 20


def process_raster(entry: FileEntry, kind: str, result: FileResult, *, deid: Deidentifier,
                    site: str, staging: Path, max_pixels: int, burned_in: str | None
                    ) -> FileResult:
    """A JPEG or PNG named by a manifest row: wrapped as DICOM Secondary Capture with a header
    from the row (bonebase.dicom.raster), then the same steps as any DICOM file.

    A JPEG that keeps its own bytes is decoded reduced when the burned-in text step reads it
    reduced anyway (:func:`ocr_scale`); when that step finds letters, or QC's figures lie near a
    gate, it is done again from the full-size decode, so what is stored and what QC decides
    never depend on it (tests/unit/test_raster_reduced.py)."""
    row = entry.named
    if row is None:
        # With an image_file column the site names its pictures; without one, this is a
        # non-DICOM file like a screenshot or a PDF, unless the site meant to send it.
        result.reason = "unlisted_image" if entry.listing else "non_dicom"
        result.message = (f"{entry.rel}: a {_KIND[kind]} image that no manifest row names in an "
                          "image_file column; to send it, name it in its case's row "
                          "(docs/manifest.md, 'JPEG and PNG images'), else remove it from the "
                          "submission")
        return result
    where = f"{entry.rel} (row {row.row}, image_file)"
    if entry.size > RASTER_MAX_BYTES:  # read whole below: a JPEG/PNG is never this large
        result.reason = "file_too_large"
        result.message = (f"{where}: {entry.size >> 20} MiB, more than a JPEG or PNG of "
                          f"{RASTER_MAX_BYTES >> 20} MiB that is read whole; send the image as "
                          "DICOM, or a smaller export")
        return result
    try:
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        result.reason = "missing_file"
        result.message = f"{entry.rel}: the file disappeared during ingestion; send it again"
        return result
    args = {"kind": kind, "where": where, "deid": deid, "site": site, "staging": staging,
            "max_pixels": max_pixels, "burned_in": burned_in}
    try:
        return _wrapped(entry, data, result, scale=ocr_scale, **args)
    except FullSizeNeeded:
        # QC near a gate, or letters on the reduced picture: the whole step again from the
        # full-size decode, exactly as for any image (a new result: the first one is partial).
        fresh = FileResult(result.rel, result.source_sha256, result.size)
        return _wrapped(entry, data, fresh, scale=None, **args)


def _wrapped(entry: FileEntry, data: bytes, result: FileResult, *, kind: str, where: str,
             deid: Deidentifier, site: str, staging: Path, max_pixels: int,
             burned_in: str | None, scale) -> FileResult:
    """Wrap, de-identify and stage ``data``; raises FullSizeNeeded when the JPEG was decoded
    reduced (``scale``) and the step needs it at full size."""
    from validation.image_qc import qc_metrics

    try:
        wrapped = raster.wrap(data, name=where, row=entry.named, site=site,
                              source_sha256=entry.sha256, max_pixels=max_pixels, scale=scale)
        near_gate = wrapped.step > 1 and _near_qc_gate(wrapped.frame, qc_metrics)
        if not near_gate:
            encoded = raster.to_part10(wrapped.dataset)
            parts = open_bytes(encoded, entry.rel, entry.path, max_pixels=max_pixels,
                               first_frame=wrapped.frame)
    except raster.RasterError as exc:
        result.reason, result.message = exc.reason, str(exc)
        return result
    except Exception as exc:  # noqa: BLE001 - whatever a hostile image makes a library raise
        result.reason = "corrupt_image"
        result.message = (f"{where}: the {_KIND[kind]} file cannot be processed "
                          f"({exc.__class__.__name__}); export it again and resubmit")
        return result
    if near_gate:
        raise FullSizeNeeded(entry.rel)
    del wrapped.dataset, encoded
    with parts:
        try:
            staged = deidentify_parts(parts, result, deid=deid, site=site, qc_metrics=qc_metrics,
                                      burned_in=burned_in, wrapped=True, frame_step=wrapped.step)
        except FullSizeNeeded:
            raise
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError included
            return _failed(result, exc)
        # What was done to the pixels, and which metadata segments were cut out (receipt).
        result.extra["raster"] = {"format": _KIND[kind], "row": entry.named.row,
                                  "notes": list(wrapped.notes),
                                  "stripped": sorted(set(wrapped.stripped))}
        if staged is not None:
            redacted = bool((result.extra.get("burned_in") or {}).get("redacted"))
            result.staged, result.sha256, result.out_size = _stage(parts, *staged, staging,
                                                                   pixels=not redacted)
    return result


def ocr_scale(rows: int, columns: int) -> int:
    """The factor (1, 2 or 4) to decode a kept JPEG reduced by: the burned-in text step reads
    the image averaged over k x k blocks (k = burned_in_image.block_factor), so a JPEG
    decoded at 1/s, s dividing k, gives it the same picture through the decoder's DCT scaling
    (within a grey level: tests/unit/test_raster_reduced.py) and skips the full-size decode and
    the averaging. 1 when no such s gives the same k."""
    side = max(rows, columns)
    k = block_factor(side)
    for s in (4, 2):
        if k % s == 0 and block_factor(-(-side // s)) == k // s:
            return s
    return 1


def _near_qc_gate(frame, qc_metrics) -> bool:
    """Whether QC's figures on a reduced ``frame`` lie near a gate (see _QC_MARGIN_*)."""
    from validation.image_qc import BLANK_STD_MAX, SATURATED_MAX

    figures = qc_metrics(frame, bits_stored=8)
    return (figures["pixel_std"] < _QC_MARGIN_STD * BLANK_STD_MAX
            or figures["saturated_fraction"] > _QC_MARGIN_SATURATED * SATURATED_MAX)
