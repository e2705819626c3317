"""Size checks on an uploaded image, made on its header before any pixel is decoded.

An image file can claim far more pixels than its bytes suggest: a 136 kB PNG of 12,000 x 12,000
pixels or a small deflated DICOM of 16,000 x 16,000 decodes to gigabytes. These functions read
headers only and refuse a claim over ``max_pixels`` (rows x columns x frames x samples, the
platform's ``BONEBASE_MAX_PIXELS``) with :class:`UploadError` code ``too_large``; a deflated DICOM
is inflated with a bound (its header first, then no more than its pixels need), so a deflate bomb
is refused before it is expanded. The diagnosis service and the web database's upload form both
decode through :func:`bonebase.model.inference.decode_upload`, which calls these.
"""

from __future__ import annotations

import io
import warnings
import zlib

import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.encaps import generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from bonebase.dicom.read import expected_pixel_bytes
from bonebase.errors import InputError

TOO_LARGE = "too_large"
# A radiograph's header (everything before Pixel Data) is a few kB; this bounds the first
# inflation of a deflated data set, before its dimensions are known.
HEADER_LIMIT = 4 * 1024 * 1024
# Elements allowed after Pixel Data (padding, digital signatures) in a deflated data set.
TRAILER_LIMIT = 1024 * 1024
_PIXEL_DATA = 0x7FE00010
# Compressed syntaxes whose decoders size their output by the codestream's own header.
_JPEG_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                            "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})  # fmt: skip
_J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                           "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                           "1.2.840.10008.1.2.4.203"})  # fmt: skip


class UploadError(InputError):
    """An uploaded file the service cannot diagnose; ``code`` is a stable machine-readable reason
    (``empty``, ``not_an_image``, ``corrupt_file``, ``not_a_radiograph``, ``unsupported_image``,
    ``too_large``)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _too_large(name: str, what: str, max_pixels: int) -> UploadError:
    return UploadError(
        f"{name}: {what}, over the limit of {max_pixels:,} pixels (BONEBASE_MAX_PIXELS); "
        "send the radiograph at its acquired resolution, not upsampled",
        code=TOO_LARGE,
    )


def _check_count(name: str, dims: list[int], max_pixels: int) -> None:
    count = 1
    for d in dims:
        count *= max(d, 0)
    if count > max_pixels:
        shown = " x ".join(f"{d:,}" for d in dims)
        raise _too_large(name, f"the image claims {shown} = {count:,} pixels", max_pixels)


def open_image(data: bytes, *, name: str, max_pixels: int) -> Image.Image:
    """``PIL.Image.open`` of ``data`` (header read, pixels not decoded) within ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            # The limit here is max_pixels; PIL's own warning threshold is not ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        # PIL refuses over twice its MAX_IMAGE_PIXELS before we see the size.
        raise _too_large(
            name, f"the image claims over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels", max_pixels
        ) from None
    except UnidentifiedImageError:
        raise UploadError(
            f"{name}: not a DICOM, PNG or JPEG file; send a radiograph image", code="not_an_image"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:  # a damaged header
        raise UploadError(
            f"{name}: the image file is corrupt ({type(exc).__name__}); send it again",
            code="corrupt_file",
        ) from None
    width, height = im.size
    try:
        _check_count(name, [height, width, len(im.getbands())], max_pixels)
    except UploadError:
        im.close()
        raise
    return im


def _dims(ds: pydicom.Dataset) -> list[int]:
    def num(keyword: str, default: int) -> int:
        try:
            return int(ds.get(keyword, default) or default)
        except (TypeError, ValueError):
            return default

    return [num("Rows", 0), num("Columns", 0), num("NumberOfFrames", 1),
            num("SamplesPerPixel", 1)]  # fmt: skip


def _corrupt(name: str, what: str) -> UploadError:
    return UploadError(
        f"{name}: {what}; export the image again from the PACS as a DICOM file",
        code="corrupt_file",
    )


def dicom_within_limits(data: bytes, *, name: str, max_pixels: int) -> bytes:
    """``data`` after checking the pixel count its header claims against ``max_pixels``.

    A deflated data set comes back inflated (re-labelled Explicit VR Little Endian, the syntax
    deflate wraps), so that nothing downstream inflates it again without a bound.
    """
    fp = io.BytesIO(data)
    try:
        read_preamble(fp, False)
        # pydicom has no public reader of the meta group alone from a buffer; dcmread would
        # inflate a deflated data set whole before we could look at its dimensions.
        meta = _read_file_meta_info(fp)
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            _check_count(name, _dims(ds), max_pixels)
            return data
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        head = inflater.decompress(fp.read(), HEADER_LIMIT)
        header_io = io.BytesIO(head)
        ds = read_dataset(header_io, False, True,
                          stop_when=lambda tag, _vr, _len: tag == _PIXEL_DATA)  # fmt: skip
        pixels_at = header_io.tell()
    except UploadError:
        raise
    except Exception as exc:  # pydicom raises assorted types (and RecursionError) on bad input
        raise _corrupt(name, f"the DICOM header cannot be read ({type(exc).__name__})") from None
    if pixels_at >= len(head) and not inflater.eof:
        raise _corrupt(name, f"the DICOM header inflates to over {HEADER_LIMIT:,} bytes")
    _check_count(name, _dims(ds), max_pixels)
    # Pixel Data's element header (12 bytes), its value and a trailer: no more is inflated.
    budget = pixels_at + 12 + expected_pixel_bytes(ds) + 1 + TRAILER_LIMIT - len(head)
    body = head
    if budget > 0 and not inflater.eof:  # (a max_length of 0 would mean no limit)
        body += inflater.decompress(inflater.unconsumed_tail, budget)
    if budget < 0 or not inflater.eof:
        if budget < 0 or inflater.unconsumed_tail or inflater.decompress(b"", 1):
            raise _too_large(name, "the deflated data set inflates to more than its pixels need",
                             max_pixels)  # fmt: skip
        raise _corrupt(name, "the deflated data set is truncated")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = DicomBytesIO()
    out.write(bytes(128) + b"DICM")
    try:
        write_file_meta_info(out, meta, enforce_standard=True)
    except (ValueError, TypeError, AttributeError):
        raise _corrupt(name, "the DICOM file meta information is incomplete") from None
    out.write(body)
    return out.getvalue()


def _codestream_size(frame: bytes, j2k: bool) -> tuple[int, int, int]:
    if j2k:
        from openjpeg import get_parameters  # the J2K decoder pydicom uses; reads headers only

        p = get_parameters(frame)
        return int(p["rows"]), int(p["columns"]), int(p["samples_per_pixel"])
    # pydicom's own SOF parser (what its JPEG decoders consult); not exported by name.
    p = _get_jpg_parameters(frame)
    return int(p["height"]), int(p["width"]), int(p["components"])


def check_frames(ds: pydicom.Dataset, *, name: str, max_pixels: int) -> None:
    """For JPEG / JPEG 2000 Pixel Data: each frame's codestream must claim the header's size.

    The decoders allocate what the codestream says, not what Rows x Columns say: a header of
    64 x 64 around a codestream of 20,000 x 20,000 would pass the header check.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax not in _JPEG_SYNTAXES | _J2K_SYNTAXES:
        return
    rows, cols, frames, samples = _dims(ds)
    try:
        sizes = {_codestream_size(bytes(f), syntax in _J2K_SYNTAXES)
                 for f in generate_frames(ds.PixelData, number_of_frames=frames)}  # fmt: skip
    except Exception as exc:  # a codestream without a readable header
        raise _corrupt(name, f"a compressed frame has no readable header ({type(exc).__name__})"
                       ) from None  # fmt: skip
    for r, c, n in sizes:
        _check_count(name, [r, c, frames, n], max_pixels)
        if (r, c, n) != (rows, cols, samples):
            raise _corrupt(name, f"a compressed frame is {r} x {c} x {n} but the header says "
                                 f"{rows} x {cols} x {samples}")  # fmt: skip


__all__ = ["TOO_LARGE", "UploadError", "check_frames", "dicom_within_limits", "open_image"]
