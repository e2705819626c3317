"""The burned-in text step of ingest and the hospital gateway: read a candidate image's first
frame (every frame whose pre-filter finds new letters, for a multi-frame image) for OCR, then by
the site's policy black out the identifying text in the pixels or hold the file for review.

The detection itself (pre-filter, OCR, verdicts, black boxes) is :mod:`bonebase.dicom.burned_in`;
this module reads the pixels from an opened file (:class:`~bonebase.dicom.stream.DicomParts`) and
writes the outcome on the file's :class:`~bonebase.ingest.process.FileResult`.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.dataelem import DataElement

from bonebase.dicom import burned_in as burned_in_step
from bonebase.dicom.read import DicomReadError, peek
from bonebase.dicom.stream import PIXEL_DATA, DicomParts, _decoded_first_frame

if TYPE_CHECKING:
    from bonebase.ingest.process import FileResult

# Files up to this size are redacted in memory; a larger one with identifying text is held.
REDACT_IN_MEMORY = 256 << 20
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


class FullSizeNeeded(Exception):  # noqa: N818 - a signal to the caller, not a failure
    """Letters found on a frame given reduced: the caller decodes it whole and runs again (what
    OCR reads, so what is blacked out, must not depend on how the frame was reduced)."""


def burned_in_text(parts: DicomParts, out, result: FileResult, *, policy: str,
                   frame_step: int = 1):
    """The burned-in text step on one candidate image: OCR of its first frame (of every frame
    whose pre-filter finds new letters, for a multi-frame image), then per the site's ``policy``
    black boxes in every frame or a quarantine reason on ``result`` (``frame_step``: see
    :func:`~bonebase.ingest.process.deidentify_parts`). Central ingest and the hospital gateway both run it."""
    rel = result.rel
    photometric = str(peek(parts.dataset, "PhotometricInterpretation", "") or "")
    try:
        if int(peek(parts.dataset, "NumberOfFrames", 1) or 1) > 1:
            from pydicom.pixels import iter_pixels

            # Decoded frame by frame: one frame in memory at a time.
            source = io.BytesIO(parts.fh.getbuffer()) if parts.in_memory else parts.path
            finding = burned_in_step.find_text_frames(iter_pixels(source), photometric)
        else:
            frame, stride = _ocr_frame(parts, frame_step)
            # Reduced: the pre-filter only; letters send it to the full size (read once).
            finding = burned_in_step.find_text(frame, photometric, step=stride,
                                               ocr=frame_step == 1)
            del frame
    except DicomReadError as exc:
        result.reason, result.message = exc.reason, str(exc)
        return None
    except Exception as exc:  # noqa: BLE001 - undecodable pixels are a corrupt file
        result.reason = "corrupt_file"
        result.message = (f"{rel}: pixel data cannot be decoded ({exc.__class__.__name__}); "
                          "export the image again from the PACS and resubmit")
        return None
    if frame_step > 1 and finding.read:
        raise FullSizeNeeded(rel)
    step = burned_in_step.Step(finding)
    step.judge(out.sources)
    if step.finding.mostly_text:
        result.reason = "not_an_image"
        result.message = (f"{rel}: the image is mostly text ({step.finding.text_share:.0%} of it"
                          "), like a scanned form or report; send documents through the "
                          "manifest's clinical data, not as images")
        return step
    if not step.regions:
        return step
    if policy == "quarantine":
        result.reason = "burned_in_text"
        result.message = (f"{rel}: identifying text is burned into the image ({step.described()}"
                          "); held for review by a data steward (the site's policy is "
                          "quarantine; with redact it would be blacked out)")
        return step
    if parts.size > REDACT_IN_MEMORY:
        result.reason = "burned_in_text"
        result.message = (f"{rel}: identifying text is burned into the image ({step.described()}"
                          f"); the file is too large ({parts.size >> 20} MB) to black it out "
                          "here; held for review by a data steward")
        return step
    # The pixels whole: at most REDACT_IN_MEMORY (a wrapped JPEG/PNG is in memory already).
    out.dataset[PIXEL_DATA] = _pixel_element(parts)
    burned_in_step.redact(out.dataset, step.regions)
    burned_in_step.add_method(out.dataset)
    step.redacted = True
    if ("burned_in_annotation" in out.needs_review
            and str(peek(parts.dataset, "Modality", "")) in burned_in_step.CANDIDATE_MODALITIES):
        # What a radiograph declared is blacked out. Other images (ultrasound: measurements,
        # settings, text all over) are redacted too, but a steward still looks at them.
        out.needs_review.remove("burned_in_annotation")
    return step


def _pixel_element(parts: DicomParts) -> DataElement:
    """The source's Pixel Data element: a native little-endian value (VR OB or OW) read from
    where it lies, without parsing the file again (the element pydicom reads: the same VR,
    the same bytes); anything else read by pydicom from the whole file."""
    ds, span, fh = parts.dataset, parts.pixels, parts.fh
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    implicit = ds.original_encoding[0]
    if span is not None and span.length is not None and syntax in _NATIVE_LE and implicit is False:
        fh.seek(span.start + 4)  # the file or the bytes in memory alike (as stream.py reads)
        vr = fh.read(2).decode("latin-1")
        if vr in ("OB", "OW"):
            fh.seek(span.value_start)
            value = fh.read(span.length)
            if len(value) < span.length:
                raise parts._truncated()
            return DataElement(PIXEL_DATA, vr, value)
    full = pydicom.dcmread(io.BytesIO(parts.fh.getbuffer()) if parts.in_memory else parts.path)
    return full[PIXEL_DATA]


def _ocr_frame(parts: DicomParts, frame_step: int = 1) -> tuple[np.ndarray, int]:
    """The first frame for OCR and the stride it was read with: a native greyscale image is
    read every ``stride``-th row and column straight from the file (memory bounded whatever its
    size; OCR reads a copy of at most OCR_SIDE pixels anyway), anything else decoded."""
    ds, span = parts.dataset, parts.pixels
    rows, cols = int(peek(ds, "Rows", 0) or 0), int(peek(ds, "Columns", 0) or 0)
    bits = int(peek(ds, "BitsAllocated", 0) or 0)
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    native = (span is not None and span.length is not None and syntax in _NATIVE_LE
              and bits in (8, 16) and rows and cols
              and int(peek(ds, "SamplesPerPixel", 1) or 1) == 1)
    if not native:
        return _decoded_first_frame(parts), frame_step
    stride = max(1, -(-max(rows, cols) // (2 * burned_in_step.OCR_SIDE)))
    signed = int(peek(ds, "PixelRepresentation", 0) or 0) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    row_bytes = cols * dtype.itemsize
    if parts.in_memory:
        plane = np.frombuffer(parts.fh.getbuffer(), dtype, count=rows * cols,
                              offset=span.value_start).reshape(rows, cols)
        return plane[::stride, ::stride].copy(), stride
    fd = parts.fh.fileno()
    return np.stack([np.frombuffer(os.pread(fd, row_bytes, span.value_start + r * row_bytes),
                                   dtype)[::stride] for r in range(0, rows, stride)]), stride
