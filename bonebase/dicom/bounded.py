"""Checks that keep a hostile DICOM file from costing more than a bounded amount (issue #15).

- :func:`check_nesting`: sequences nested deeper than MAX_NESTING (or holding more than
  MAX_ITEMS items) are refused before anything walks the data set recursively (pydicom's
  reader, de-identification, the encoders and the residue scan all recurse, and 5,000 levels
  fit in 600 kB).
- :func:`check_pixels`: rows x columns x frames x samples from the header, before any decoding.
- :func:`guard_deflated`: a Deflated Explicit VR Little Endian file is inflated through a bounded
  zlib decompressobj first: its header is read from the first few MiB, its pixel count checked,
  and the whole stream must not inflate past header + Pixel Data as claimed (pydicom itself
  inflates the whole file into memory at once).
"""

from __future__ import annotations

import io
import zlib
from os import PathLike
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

from bonebase.dicom.read import _RESEND, DicomReadError, expected_pixel_bytes, peek

# Deeper than any real object (SR content trees nest ~10 levels), far below the depth at which
# pydicom or the de-identification walk exhaust Python's recursion limit (~190 levels).
MAX_NESTING = 32
# Items in all sequences of a header: 500,000 empty items (an 8 MB file) took 680 MB and
# minutes to de-identify and encode, and were stored. An enhanced multi-frame CT/MR holds about
# 15 per frame (per-frame functional groups), so thousands of frames stay well below this.
MAX_ITEMS = 200_000
DEFLATED = "1.2.840.10008.1.2.1.99"
HEAD_MAX = 4 << 20  # inflated bytes in which a deflated file's header must end
SLACK = 1 << 20  # allowed past the claimed Pixel Data (its element header, trailing padding)
_CHUNK = 1 << 16
_PIXEL_GROUP = 0x7FE00000


def _is_sequence(elem: DataElement | RawDataElement) -> bool:
    if not isinstance(elem, RawDataElement):
        return elem.VR == "SQ"
    if elem.VR is not None:
        return elem.VR == "SQ"
    try:
        return dictionary_VR(elem.tag) == "SQ"  # implicit VR: the dictionary's
    except KeyError:  # private tag in implicit VR: read as bytes, never walked
        return False


def check_nesting(ds: pydicom.Dataset, name: str, *, limit: int = MAX_NESTING,
                  max_items: int | None = None) -> None:
    """Raise ``too_deeply_nested`` when sequences nest deeper than ``limit``, ``corrupt_file``
    when they hold more than ``max_items`` items in all (walked without recursion; a raw
    sequence is converted one level at a time, as de-identification would)."""
    stack, items = [(ds, 0)], 0
    max_items = MAX_ITEMS if max_items is None else max_items
    while stack:
        item, depth = stack.pop()
        # _dict: the elements as read (raw ones unconverted); get_item per tag costs 3x more.
        for tag in [t for t, e in item._dict.items() if _is_sequence(e)]:
            if depth >= limit:
                raise DicomReadError(
                    f"{name}: sequences nested more than {limit} levels deep; no real image "
                    f"needs that many, so the file was not processed; {_RESEND}",
                    reason="too_deeply_nested", file=name)
            children = item[tag].value or ()
            items += len(children)
            if items > max_items:
                raise DicomReadError(
                    f"{name}: sequences holding more than {max_items:,} items; no real image "
                    f"needs that many, so the file was not processed; {_RESEND}",
                    reason="corrupt_file", file=name)
            stack.extend((child, depth + 1) for child in children)


def _int(value: object, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def pixel_count(ds: pydicom.Dataset) -> int:
    """Rows x Columns x NumberOfFrames x SamplesPerPixel as the header claims them."""
    return (_int(peek(ds, "Rows"), 0) * _int(peek(ds, "Columns"), 0)
            * max(1, _int(peek(ds, "NumberOfFrames"), 1))
            * max(1, _int(peek(ds, "SamplesPerPixel"), 1)))


def check_pixels(ds: pydicom.Dataset, name: str, max_pixels: int) -> None:
    """Raise ``too_many_pixels`` when the header claims more than ``max_pixels``."""
    count = pixel_count(ds)
    if count > max_pixels:
        raise DicomReadError(
            f"{name}: the image claims {count:,} pixels (rows x columns x frames x samples), "
            f"over the limit of {max_pixels:,} (BONEBASE_MAX_PIXELS); it was not decoded: "
            "send the image at its acquired size, or ask the operator to raise the limit",
            reason="too_many_pixels", file=name)


def _inflated(fh: BinaryIO):
    """The inflated stream in pieces of at most _CHUNK bytes (memory stays bounded)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    while not inflater.eof:
        data = fh.read(_CHUNK)
        if not data:
            break
        while data:
            yield inflater.decompress(data, _CHUNK)
            data = inflater.unconsumed_tail
    yield inflater.flush()


def _header(head: bytes) -> tuple[pydicom.Dataset, int]:
    """The data set before Pixel Data parsed from the first inflated bytes, and its end."""
    fp = io.BytesIO(head)
    try:
        ds = read_dataset(fp, False, True, stop_when=lambda tag, vr, length: tag >= _PIXEL_GROUP)
    except (EOFError, ValueError, KeyError, TypeError, NotImplementedError, OSError):
        ds = pydicom.Dataset()
    return ds, fp.tell()


def guard_deflated(source: str | PathLike | BinaryIO, name: str, max_pixels: int) -> None:
    """For a deflated file, check its pixel count and inflated size without inflating it whole;
    any other file is left alone (its position is restored)."""
    if isinstance(source, str | PathLike):
        with open(source, "rb") as fh:
            return guard_deflated(fh, name, max_pixels)
    start = source.tell()
    try:
        if DEFLATED.encode() not in source.read(2048):  # cheap: the syntax is in the file meta
            return None
        source.seek(start)
        read_preamble(source, True)
        meta = _read_file_meta_info(source)
        if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
            return None
        _check_inflation(source, name, max_pixels)
        return None
    finally:
        source.seek(start)


def _check_inflation(fh: BinaryIO, name: str, max_pixels: int) -> None:
    head, total, cap = bytearray(), 0, None
    for piece in _inflated(fh):
        total += len(piece)
        if cap is None:
            head += piece
            if len(head) < HEAD_MAX:
                continue
            cap = _cap(bytes(head), name, max_pixels)
            head = bytearray()
        if total > cap:
            raise DicomReadError(
                f"{name}: the deflated data set inflates past {cap:,} bytes, more than its "
                "header's image needs; it was not inflated further; check where the file "
                "came from and export it again uncompressed", reason="decompression_bomb",
                file=name)
    if cap is None:  # the whole stream fitted in the head: the pixel count still applies
        _cap(bytes(head), name, max_pixels)


def _cap(head: bytes, name: str, max_pixels: int) -> int:
    ds, end = _header(head)
    check_pixels(ds, name, max_pixels)
    return end + expected_pixel_bytes(ds) + SLACK


# Compressed syntaxes whose decoders size their output by the codestream's own header, not by
# Rows x Columns: a 64 x 64 header around a J2K codestream claiming 20,000 x 20,000 took 2.3 GB.
_JPEG = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                   "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
_J2K = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                  "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})


def _codestream_size(head: bytes, j2k: bool) -> tuple[int, int, int]:
    if j2k:
        from openjpeg import get_parameters  # pydicom's J2K decoder; reads the header only

        p = get_parameters(head)
        return int(p["rows"]), int(p["columns"]), int(p["samples_per_pixel"])
    from pydicom.pixels.utils import _get_jpg_parameters  # what pydicom's JPEG decoders read

    p = _get_jpg_parameters(head)
    return int(p["height"]), int(p["width"]), int(p["components"])


def check_codestream(head: bytes, ds: pydicom.Dataset, syntax: str, name: str) -> None:
    """Before a JPEG / JPEG 2000 frame is decoded: its codestream (``head``: its first bytes)
    must claim the size the header does, which :func:`check_pixels` has bounded."""
    if syntax not in _JPEG | _J2K:
        return
    claimed = (_int(peek(ds, "Rows"), 0), _int(peek(ds, "Columns"), 0),
               max(1, _int(peek(ds, "SamplesPerPixel"), 1)))
    try:
        found = _codestream_size(head, syntax in _J2K)
    except Exception as exc:  # noqa: BLE001 - a codestream without a readable header
        raise DicomReadError(
            f"{name}: the compressed frame has no readable header ({type(exc).__name__}); "
            f"{_RESEND}", reason="corrupt_file", file=name) from None
    if found != claimed:
        raise DicomReadError(
            f"{name}: the compressed frame is {found[0]} x {found[1]} x {found[2]} but the header "
            f"says {claimed[0]} x {claimed[1]} x {claimed[2]}; it was not decoded; {_RESEND}",
            reason="corrupt_file", file=name)
