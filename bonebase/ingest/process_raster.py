"""A JPEG or PNG named by a manifest row, through the steps of any submitted file.

:mod:`bonebase.dicom.raster` wraps it as DICOM Secondary Capture with a header built from the
row; then :func:`bonebase.ingest.process.deidentify_parts` de-identifies it, runs QC and the
burned-in text step, and it is staged like any DICOM file.
"""

from __future__ import annotations

import os
from pathlib import Path

from bonebase.dicom import raster
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.stream import open_bytes
from bonebase.ingest.process import FileResult, _failed, _stage, deidentify_parts
from bonebase.ingest.scan import FileEntry

_KIND = {"jpeg": "JPEG", "png": "PNG"}
# A JPEG or PNG is read whole (its markers are walked, its pixels decoded once): a radiograph at
# BONEBASE_MAX_PIXELS is a few hundred MB decoded and far less as a file.
RASTER_MAX_BYTES = 256 << 20


def process_raster(entry: FileEntry, kind: str, result: FileResult, *, deid: Deidentifier,
                    site: str, staging: Path, max_pixels: int, burned_in: str | None
                    ) -> FileResult:
    """A JPEG or PNG named by a manifest row: wrapped as DICOM Secondary Capture with a header
    from the row (bonebase.dicom.raster), then the same steps as any DICOM file."""
    from validation.image_qc import qc_metrics

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
    try:
        wrapped = raster.wrap(data, name=where, row=row, site=site, source_sha256=entry.sha256,
                              max_pixels=max_pixels)
        del data
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
    del wrapped.dataset, encoded
    with parts:
        try:
            staged = deidentify_parts(parts, result, deid=deid, site=site, qc_metrics=qc_metrics,
                                      burned_in=burned_in, wrapped=True)
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError included
            return _failed(result, exc)
        # What was done to the pixels, and which metadata segments were cut out (receipt).
        result.extra["raster"] = {"format": _KIND[kind], "row": row.row,
                                  "notes": list(wrapped.notes),
                                  "stripped": sorted(set(wrapped.stripped))}
        if staged is not None:
            redacted = bool((result.extra.get("burned_in") or {}).get("redacted"))
            result.staged, result.sha256, result.out_size = _stage(parts, *staged, staging,
                                                                   pixels=not redacted)
    return result
