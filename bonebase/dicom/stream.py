"""A DICOM file as a parsed header plus the location of its Pixel Data, never loaded whole.

Ingestion de-identifies the header and copies the Pixel Data element byte for byte from the
source into the output, in chunks, so that a 2 GB file costs a few megabytes of memory. Image QC
reads a strided sample of the first frame straight from the file (the sampled rows only). Small files
are read into memory once and take the same path (one read instead of many seeks).

The copy is exact because de-identification keeps Pixel Data as it was read (same transfer
syntax, same encoding): the output equals what pydicom writes for the whole data set, which
``tests/unit/test_ingest_stream.py`` checks.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom

from bonebase.dicom.bounded import check_codestream
from bonebase.dicom.read import (
    _RESEND,
    NATIVE_SYNTAXES,
    DicomReadError,
    _read,
    expected_pixel_bytes,
    peek,
    read_full,
)

IN_MEMORY_MAX = 32 << 20  # files up to this size are read whole: one read beats many seeks
CHUNK = 1 << 20
PIXEL_DATA = 0x7FE00010
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, PIXEL_DATA})
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
DEFLATED = "1.2.840.10008.1.2.1.99"
QC_SAMPLES = 65_536  # pixels read for image QC, whatever the image size


@dataclass(frozen=True)
class PixelSpan:
    """Where the Pixel Data element lies in the source file (byte offsets)."""

    start: int  # the element's tag
    value_start: int
    length: int | None  # of the value; None when encapsulated (undefined length)
    end: int  # after the value, or after the sequence delimiter when encapsulated


@dataclass
class DicomParts:
    """A source DICOM file: ``dataset`` holds every element except Pixel Data."""

    name: str
    path: Path
    dataset: pydicom.Dataset
    fh: BinaryIO
    size: int
    pixels: PixelSpan | None  # None: Pixel Data is inside ``dataset`` (deflated files)
    # The first frame once decoded (QC and the burned-in text step both read it), or given by
    # whoever decoded it already (a JPEG/PNG wrapped as DICOM, bonebase.dicom.raster).
    first_frame: np.ndarray | None = None

    @property
    def in_memory(self) -> bool:
        return isinstance(self.fh, io.BytesIO)

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> DicomParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def copy_pixels(self, out: BinaryIO, digest) -> int:
        """Write the encoded Pixel Data element to ``out`` (and ``digest``); returns its size."""
        span = self.pixels
        if span is None:
            return 0
        # An encapsulated value is copied up to its delimiter, which is written as pydicom
        # writes it (length 0), whatever the source held in that length field.
        stop = span.end - 8 if span.length is None else span.end
        written = 0
        if self.in_memory:
            view = self.fh.getbuffer()[span.start:stop]
            out.write(view)
            digest.update(view)
            written = len(view)
            view.release()
        else:
            self.fh.seek(span.start)
            remaining = stop - span.start
            while remaining:
                block = self.fh.read(min(CHUNK, remaining))
                if not block:
                    raise self._truncated()
                out.write(block)
                digest.update(block)
                remaining -= len(block)
                written += len(block)
        if span.length is None:
            little = self.dataset.original_encoding[1] is not False
            delimiter = struct.pack("<HHI" if little else ">HHI", 0xFFFE, 0xE0DD, 0)
            out.write(delimiter)
            digest.update(delimiter)
            written += len(delimiter)
        return written

    def _truncated(self) -> DicomReadError:
        return DicomReadError(
            f"{self.name}: the DICOM file is truncated (it ends inside Pixel Data); {_RESEND}",
            reason="corrupt_file", file=self.name)


def open_parts(path: Path, name: str, *, max_pixels: int | None = None) -> DicomParts:
    """Parse the header of ``path`` and locate its Pixel Data; raises DicomReadError.

    With ``max_pixels``, an image claiming more pixels is refused from its header (a deflated one
    before it is inflated). A link is not followed (OSError): submissions hold files, not links.
    """
    # O_NOFOLLOW: a file swapped for a link after the submission was scanned is not read.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    fh: BinaryIO = os.fdopen(fd, "rb")  # owned by the returned DicomParts
    try:
        size = os.fstat(fd).st_size
        if size <= IN_MEMORY_MAX:
            data = fh.read()
            fh.close()
            fh = io.BytesIO(data)
        ds = _read(fh, name, pixels=False, max_pixels=max_pixels)
        parts = DicomParts(name, path, ds, fh, size, None)
        if _syntax(ds) == DEFLATED:
            # The data set is one deflate stream: there is no Pixel Data offset to copy from.
            fh.seek(0)
            parts.dataset = read_full(fh)
            return parts
        parts.pixels = _locate_pixels(parts, fh.tell())
        return parts
    except BaseException:
        fh.close()
        raise


def open_bytes(data: bytes, name: str, path: Path, *, max_pixels: int | None = None,
               first_frame: np.ndarray | None = None) -> DicomParts:
    """:func:`open_parts` on a DICOM file held in memory (a JPEG or PNG wrapped as Secondary
    Capture); ``path`` is the submitted file's, for messages; ``first_frame`` its pixels as
    already decoded."""
    fh = io.BytesIO(data)
    ds = _read(fh, name, pixels=False, max_pixels=max_pixels)
    parts = DicomParts(name, path, ds, fh, len(data), None, first_frame)
    parts.pixels = _locate_pixels(parts, fh.tell())
    return parts


def _syntax(ds: pydicom.Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def _no_pixels(name: str) -> DicomReadError:
    return DicomReadError(f"{name}: the DICOM file has no Pixel Data (7FE0,0010); {_RESEND}",
                          reason="corrupt_file", file=name)


def _locate_pixels(parts: DicomParts, start: int) -> PixelSpan:
    fh, ds, name = parts.fh, parts.dataset, parts.name
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    fh.seek(start)
    head = fh.read(8)
    if len(head) < 8:
        raise _no_pixels(name)
    group, elem = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | elem) not in _PIXEL_TAGS:
        raise _no_pixels(name)
    if (group << 16 | elem) != PIXEL_DATA:  # float pixel data: not an image the platform stores
        raise _no_pixels(name)
    if implicit:
        length, value_start = struct.unpack(endian + "I", head[4:8])[0], start + 8
    elif head[4:6].decode("latin-1") in _LONG_VRS:
        more = fh.read(4)
        if len(more) < 4:
            raise parts._truncated()
        length, value_start = struct.unpack(endian + "I", more)[0], start + 12
    else:
        length, value_start = struct.unpack(endian + "H", head[6:8])[0], start + 8
    if length == _UNDEFINED:
        span = PixelSpan(start, value_start, None, _encapsulated_end(parts, value_start, endian))
    else:
        if value_start + length > parts.size:
            raise parts._truncated()
        span = PixelSpan(start, value_start, length, value_start + length)
        ts = _syntax(ds) or "1.2.840.10008.1.2"
        expected = expected_pixel_bytes(ds)
        # One padding byte is allowed: values have even length.
        if ts in NATIVE_SYNTAXES and not expected <= length <= expected + 1:
            raise DicomReadError(
                f"{name}: Pixel Data holds {length} bytes but Rows x Columns x Samples x "
                f"BitsAllocated/8 x Frames = {expected}; {_RESEND}",
                reason="corrupt_file", file=name)
    if span.end < parts.size:
        _read_trailing(parts, span.end, implicit, little)
    return span


def _encapsulated_end(parts: DicomParts, pos: int, endian: str) -> int:
    """Offset after the sequence delimiter of encapsulated Pixel Data (items are skipped)."""
    fh, first = parts.fh, True
    while True:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            raise parts._truncated()
        group, elem, length = struct.unpack(endian + "HHI", head)
        tag = group << 16 | elem
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM or length == _UNDEFINED:
            what = "does not start with an item" if first else "holds something other than items"
            raise DicomReadError(f"{parts.name}: compressed Pixel Data {what}; {_RESEND}",
                                 reason="corrupt_file", file=parts.name)
        first = False
        pos += 8 + length
        if pos > parts.size:
            raise parts._truncated()


def _read_trailing(parts: DicomParts, offset: int, implicit: bool, little: bool) -> None:
    """Elements after Pixel Data (padding, signatures) join the header, to be de-identified."""
    from pydicom.filereader import read_dataset

    parts.fh.seek(offset)
    try:
        trailing = read_dataset(parts.fh, implicit, little is not False)
    except Exception as exc:  # noqa: BLE001 - any parse failure here is a damaged file
        raise DicomReadError(
            f"{parts.name}: the DICOM file is corrupt after Pixel Data ({type(exc).__name__});"
            f" {_RESEND}", reason="corrupt_file", file=parts.name) from exc
    for elem in trailing.elements():
        parts.dataset[elem.tag] = elem


def qc_sample(parts: DicomParts) -> tuple[np.ndarray, float]:
    """A strided sample (about QC_SAMPLES pixels) of the first frame, and its aspect ratio.

    Native greyscale images are sampled straight from the file bytes; anything else (colour,
    compressed, unusual bit depths) decodes the first frame only, through pydicom.
    """
    ds, span = parts.dataset, parts.pixels
    rows, cols = int(peek(ds, "Rows", 0) or 0), int(peek(ds, "Columns", 0) or 0)
    aspect = float(max(rows, cols) / max(1, min(rows, cols)))
    bits = int(peek(ds, "BitsAllocated", 0) or 0)
    stored = int(peek(ds, "BitsStored", bits) or bits)
    ts = _syntax(ds) or "1.2.840.10008.1.2"
    native = (span is not None and span.length is not None and ts in NATIVE_SYNTAXES
              and ts != DEFLATED and bits in (8, 16, 32) and rows and cols
              and int(peek(ds, "SamplesPerPixel", 1) or 1) == 1)
    if not native:
        return _decoded_first_frame(parts), aspect
    signed = int(peek(ds, "PixelRepresentation", 0) or 0) == 1
    little = ds.original_encoding[1] is not False
    dtype = np.dtype(f"{'<' if little else '>'}{'i' if signed else 'u'}{bits // 8}")
    step = max(1, math.ceil(math.sqrt(rows * cols / QC_SAMPLES)))
    while math.ceil(rows / step) * math.ceil(cols / step) > QC_SAMPLES:
        step += 1
    if parts.in_memory:
        plane = np.frombuffer(parts.fh.getbuffer(), dtype, count=rows * cols,
                              offset=span.value_start).reshape(rows, cols)
        sample = plane[::step, ::step]
    else:
        # Only the sampled rows are read (pread). Not numpy.memmap: touching a strided sample
        # of a mapping maps in most of the file (read-ahead, large page-cache folios).
        fd, row_bytes = parts.fh.fileno(), cols * dtype.itemsize
        sample = np.stack([
            np.frombuffer(os.pread(fd, row_bytes, span.value_start + r * row_bytes), dtype)[::step]
            for r in range(0, rows, step)])
    sample = sample.astype(dtype.newbyteorder("="))
    if stored < bits:  # bits above BitsStored are not part of the value (PS3.5 8.1.1)
        shift = bits - stored
        sample = (sample << shift) >> shift if signed else sample & ((1 << stored) - 1)
    return sample, aspect


def _first_fragment(parts: DicomParts, limit: int = CHUNK) -> bytes:
    """The first ``limit`` bytes of the first fragment of encapsulated Pixel Data (after the
    Basic Offset Table item): where the first frame's codestream header is."""
    endian = "<" if parts.dataset.original_encoding[1] is not False else ">"
    pos = parts.pixels.value_start
    for skip in (True, False):  # the offset table's item, then the first fragment's
        parts.fh.seek(pos)
        head = parts.fh.read(8)
        if len(head) < 8:
            raise parts._truncated()
        group, elem, length = struct.unpack(endian + "HHI", head)
        if (group << 16 | elem) != _ITEM or length == _UNDEFINED:
            raise DicomReadError(f"{parts.name}: compressed Pixel Data holds no frame; {_RESEND}",
                                 reason="corrupt_file", file=parts.name)
        pos += 8 + (length if skip else 0)
    return parts.fh.read(min(length, limit))


def _decoded_first_frame(parts: DicomParts) -> np.ndarray:
    if parts.first_frame is None:
        parts.first_frame = _decode_first_frame(parts)
    return parts.first_frame


def _decode_first_frame(parts: DicomParts) -> np.ndarray:
    if parts.pixels is None:  # deflated: the data set was read whole
        return parts.dataset.pixel_array
    from pydicom.pixels import pixel_array

    if parts.pixels.length is None:  # encapsulated: the codestream must claim the header's size
        check_codestream(_first_fragment(parts), parts.dataset, _syntax(parts.dataset), parts.name)
    parts.fh.seek(0)
    # index=0 decodes one frame only: memory stays bounded by a frame, not the file.
    return pixel_array(parts.fh, index=0)
