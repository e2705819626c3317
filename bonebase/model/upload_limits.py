"""Size checks on an uploaded image, made on its header before any pixel is decoded.

An image file can claim far more pixels than its bytes suggest: a 136 kB PNG of 12,000 x 12,000
pixels or a small deflated DICOM of 16,000 x 16,000 decodes to gigabytes. These functions read
headers only and refuse a claim over ``max_pixels`` (rows x columns x frames x samples, the
platform's ``BONEBASE_MAX_PIXELS``) with :class:`UploadError` code ``too_large``. DICOM goes
through ingest's own checks (:mod:`bonebase.dicom.bounded`: bounded inflation of a deflated data
set, sequence depth, pixel count, codestream size). The diagnosis service and the web database's
upload form both decode through :func:`bonebase.model.inference.decode_upload`, which calls these.
"""

from __future__ import annotations

import io
import warnings

import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.encaps import generate_frames

from bonebase.dicom.bounded import check_codestream, check_nesting, check_pixels, guard_deflated
from bonebase.dicom.read import COMPRESSED_SYNTAXES, DicomReadError
from bonebase.errors import InputError

TOO_LARGE = "too_large"


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


# Reasons of bonebase.dicom.bounded (the ingest's own checks) as the service's error codes.
_CODES = {"too_many_pixels": TOO_LARGE, "decompression_bomb": TOO_LARGE}


def check_dicom(data: bytes, *, name: str, max_pixels: int) -> None:
    """Refuse a DICOM upload whose header claims over ``max_pixels``, whose deflated data set
    inflates past what that header needs, or whose sequences nest too deep, reading no pixels.

    The same checks as ingest (:mod:`bonebase.dicom.bounded`); after them pydicom's own read,
    which inflates a deflated file whole, is bounded by the pixel limit.
    """
    fp = io.BytesIO(data)
    try:
        guard_deflated(fp, name, max_pixels)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        check_nesting(ds, name)
        check_pixels(ds, name, max_pixels)
    except DicomReadError as exc:
        raise UploadError(str(exc), code=_CODES.get(exc.reason, exc.reason)) from None
    except Exception as exc:  # pydicom raises assorted types on a damaged header
        raise _corrupt(name, f"the DICOM header cannot be read ({type(exc).__name__})") from None


def _corrupt(name: str, what: str) -> UploadError:
    return UploadError(
        f"{name}: {what}; export the image again from the PACS as a DICOM file",
        code="corrupt_file",
    )


def check_frames(ds: pydicom.Dataset, *, name: str) -> None:
    """Every JPEG / JPEG 2000 frame's codestream must claim the header's size before decoding:
    decoders allocate by the codestream, not by Rows x Columns (which ``check_dicom`` bounded),
    and pydicom's ``pixel_array`` decodes all frames."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax not in COMPRESSED_SYNTAXES:
        return
    frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
    try:
        for frame in generate_frames(ds.PixelData, number_of_frames=frames):
            check_codestream(bytes(frame), ds, syntax, name)
    except DicomReadError as exc:
        raise UploadError(str(exc), code=_CODES.get(exc.reason, exc.reason)) from None
    except Exception as exc:  # fragments that do not make up the frames
        raise _corrupt(name, f"the compressed frames cannot be read ({type(exc).__name__})"
                       ) from None  # fmt: skip


__all__ = ["TOO_LARGE", "UploadError", "check_dicom", "check_frames", "open_image"]
