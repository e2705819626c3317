"""Radiograph pixels → the one float image that training, serving and the viewer all use.

MONAI's DICOM reader applies only the modality LUT; a radiograph needs the whole grayscale
pipeline of PS3.3 C.11 to look (and train) like it does on a workstation: modality LUT →
VOI LUT (or window) → MONOCHROME1 inversion, in that order.

Multi-frame images (enhanced CT/MR, XA) go through the same pipeline one frame at a time
(:func:`frame_to_float`): only the asked frame is decoded, and its rescale and window come from
the frame's functional groups (PS3.3 C.7.6.16) where the object has them.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import pydicom
from monai.transforms import Resize, SpatialPad
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.pixels.processing import apply_voi, apply_windowing

from bonebase.errors import InputError

# Fallback window when the header carries none: percentiles ignore the few saturated or dead
# pixels (collimator edges, burned-in markers) that would squash a min/max window.
ROBUST_PERCENTILES = (0.5, 99.5)
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
# Colour radiographs (a JPEG or PNG export wrapped as Secondary Capture, bonebase.dicom.raster)
# enter the grayscale pipeline as their luma (ITU-R BT.601): an export whose three channels are
# equal keeps its grey values exactly.
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422")
_LUMA = np.array([0.299, 0.587, 0.114])


class MultiFrameError(InputError):
    """A multi-frame image given where one 2-D frame is needed (a radiograph)."""

    def __init__(self, message: str, *, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


def _describe(ds: pydicom.Dataset) -> str:
    uid = ds.get("SOPInstanceUID")
    return f"instance {uid}" if uid else "dataset"


def frame_count(ds: pydicom.Dataset) -> int:
    """Number of Frames (0028,0008) of an image; 1 when the element is absent or empty."""
    value: object = None
    try:
        value = ds.get("NumberOfFrames")
        frames = 1 if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        frames = 0
    if frames < 1:
        raise InputError(
            f"{_describe(ds)} has Number of Frames (0028,0008) {str(value)!r}, not a whole number "
            "of at least 1; fix the header and submit the image again"
        )
    return frames


def _check_grayscale(ds: pydicom.Dataset) -> None:
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in _GRAYSCALE + _COLOUR:
        raise InputError(
            f"{_describe(ds)} has Photometric Interpretation {photometric!r}; a radiograph must "
            "be MONOCHROME1, MONOCHROME2 or RGB/YBR colour (taken as its luma)"
        )


def luma(rgb: np.ndarray) -> np.ndarray:
    """An RGB image (rows x columns x 3) as grey values of the same type (BT.601 luma)."""
    grey = np.rint(rgb[..., :3].astype(np.float64) @ _LUMA)
    info = np.iinfo(rgb.dtype) if np.issubdtype(rgb.dtype, np.integer) else None
    if info is not None:
        grey = np.clip(grey, info.min, info.max)
    return grey.astype(rgb.dtype)


def _decode(ds: pydicom.Dataset, src: pydicom.Dataset | BinaryIO, index: int | None) -> np.ndarray:
    """The stored values of frame ``index`` (0-based; None: the only frame) as a 2-D array."""
    where = _describe(ds)
    try:
        arr = ds.pixel_array if index is None else pixel_array(src, index=index)
    except (InvalidDicomError, NotImplementedError, RuntimeError, ValueError, AttributeError,
            KeyError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise InputError(
            f"cannot decode the pixels of {where} (transfer syntax {syntax}): {exc}; "
            "compressed syntaxes need pylibjpeg / pylibjpeg-libjpeg / pylibjpeg-openjpeg"
        ) from exc
    if arr.ndim == 3 and str(ds.get("PhotometricInterpretation", "")) in _COLOUR:
        arr = luma(arr)  # pydicom gives YBR as RGB
    if arr.ndim != 2:
        raise InputError(f"{where} decodes to shape {arr.shape}; a frame is one 2-D image")
    return arr


def _decoded_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """The stored values as a 2-D array, or InputError saying why the dataset is no radiograph."""
    where = _describe(ds)
    if "PixelData" not in ds:
        raise InputError(f"{where} has no Pixel Data (7FE0,0010); it is not an image")
    _check_grayscale(ds)
    frames = frame_count(ds)
    if frames != 1:
        raise MultiFrameError(
            f"{where} has {frames} frames (0028,0008); the radiograph pipeline takes one 2-D "
            "frame: a multi-frame CT/MR/XA is shown frame by frame and not exported for "
            "radiograph tasks",
            frames=frames,
        )
    return _decode(ds, ds, None)


# Functional group macros that change a frame's grey values: Pixel Value Transformation (rescale,
# PS3.3 C.7.6.16.2.9) and Frame VOI LUT (window, C.7.6.16.2.10).
_FRAME_MACROS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")
# What the grayscale pipeline reads from a data set (pydicom's LUT functions read these).
_GREY_KEYWORDS = (
    "SOPInstanceUID", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "ModalityLUTSequence", "RescaleSlope", "RescaleIntercept",
    "RescaleType", "VOILUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction",
)


def frame_view(ds: pydicom.Dataset, number: int) -> pydicom.Dataset:
    """The attributes that decide the grey values of frame ``number`` (1-based), as a data set.

    The image's own attributes, overridden by the Shared Functional Groups, overridden by the
    frame's item of the Per-frame Functional Groups (PS3.3 C.7.6.16): an enhanced CT's rescale
    and window live there, not at the top level where pydicom's LUT functions look.
    """
    view = pydicom.Dataset()
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta  # an OW LUT's byte order comes from the transfer syntax
    for keyword in _GREY_KEYWORDS:
        if keyword in ds:
            view[keyword] = ds[keyword]
    groups = []
    if ds.get("SharedFunctionalGroupsSequence"):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) >= number:
        groups.append(per_frame[number - 1])
    for group in groups:
        for macro in _FRAME_MACROS:
            if group.get(macro):
                for elem in group[macro][0]:
                    view[elem.tag] = elem
    return view


def frame_to_float(
    ds: pydicom.Dataset, number: int, *, source: BinaryIO | None = None
) -> np.ndarray:
    """Display-ready 2-D float32 image in [0, 1] of frame ``number`` (1-based, as DICOM counts).

    Only that frame is decoded. ``ds`` is the image's header; its pixels are read from
    ``source`` (the file, positioned anywhere) when given, else from ``ds`` itself, so a header
    read with ``stop_before_pixels`` and a file object keep the rest of the volume on disk or
    in the caller's buffer. The frame's grey values go through :func:`radiograph_to_float`'s
    pipeline with the frame's own rescale and window (:func:`frame_view`). A frame that does
    not exist is an InputError naming the valid range. For a single-frame image, frame 1 is
    exactly :func:`radiograph_to_float`.
    """
    frames = frame_count(ds)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= frames:
        raise InputError(
            f"{_describe(ds)} has {frames} frame{'s' if frames > 1 else ''}; there is no "
            f"frame {number}: ask for a frame from 1 to {frames}"
        )
    if source is None and "PixelData" not in ds:
        raise InputError(f"{_describe(ds)} has no Pixel Data (7FE0,0010); it is not an image")
    view = frame_view(ds, number)
    _check_grayscale(view)
    if source is not None:
        source.seek(0)
    return _grey_to_float(view, _decode(ds, source if source is not None else ds, number - 1))


def _voi_lut_items_ok(ds: pydicom.Dataset) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]


def _apply_voi_lut_sequence(values: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    item = ds.VOILUTSequence[0]
    entries, first = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
    # The LUT indexes integer input; rescaled values are whole numbers held as float.
    indices = np.rint(values).astype(np.int64)
    out = apply_voi(indices, ds).astype(np.float64)
    # Scale by the values the LUT actually holds, not by 2**bits: vendors often declare a 16-bit
    # LUT whose entries stop at 4095, which would otherwise show as a near-black image.
    table = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds)
    lo, hi = float(table.min()), float(table.max())
    if hi <= lo:
        return np.zeros_like(out)
    return (out - lo) / (hi - lo)


def _apply_window(values: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    try:
        out = apply_windowing(values, ds)
        # pydicom maps onto a range derived from Bits Stored and the rescale; the window's
        # images of -inf and +inf are exactly its two ends, whatever the VOI LUT Function.
        with np.errstate(over="ignore"):
            lo, hi = apply_windowing(np.array([-1e300, 1e300]), ds)
    except ValueError as exc:
        raise InputError(
            f"{_describe(ds)}: unusable Window Center/Width (0028,1050/1051): {exc}; fix or "
            "remove the window in the header"
        ) from exc
    return (out - lo) / (hi - lo)


def _robust_window(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, ROBUST_PERCENTILES)
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float64)
    return (values - lo) / (hi - lo)


def radiograph_to_float(ds: pydicom.Dataset) -> np.ndarray:
    """Display-ready 2-D float32 image in [0, 1], bright = dense (bone), from a radiograph.

    Stored values → modality LUT (rescale or LUT) → VOI LUT Sequence, else Window Center/Width
    (first of several), else a window on the 0.5–99.5 percentiles → inverted for MONOCHROME1 →
    clipped to [0, 1]. A constant image gives zeros. Multi-frame, colour or pixel-less datasets
    raise InputError.
    """
    return _grey_to_float(ds, _decoded_pixels(ds))


def _grey_to_float(ds: pydicom.Dataset, stored: np.ndarray, voi=None) -> np.ndarray:
    """``voi``: the viewer's window (modality values -> [0, 1]) instead of the header's."""
    extremes = (int(stored.min()), int(stored.max())) if stored.size else (0, 0)
    if extremes[0] == extremes[1]:
        # A blank image carries nothing to window; zeros (not NaN, not mid-grey) for all callers.
        return np.zeros(stored.shape, dtype=np.float32)
    table = _grey_table(ds, stored, voi, extremes)
    if table is not None:
        table_out, low = table
        return table_out[_offsets(stored, low)]
    return _grey_values(ds, stored, voi)


# A table of one entry per stored value between the image's extremes, when it has at least this
# many pixels per entry (a 16-bit radiograph: 4.6 Mpx over at most 65,536 values).
_TABLE_MIN_PIXELS_PER_ENTRY = 4


def _grey_table(ds: pydicom.Dataset, stored: np.ndarray, voi,
                extremes: tuple[int, int] | None = None) -> tuple[np.ndarray, int] | None:
    """The pipeline of :func:`_grey_values` run once per stored value from the image's minimum
    to its maximum instead of once per pixel (4-6x faster on pydicom-data's 3.1-3.6 Mpx
    radiographs, `python benchmarks/grey_pipeline.py`): the output table and its first stored
    value, or
    None where that would not give the same floats, bit for bit, as the per-pixel pipeline:

    - every step after decoding is a function of the pixel's stored value alone (modality
      rescale or LUT, window, VOI LUT, inversion, clip), except the statistics of the robust
      window (percentiles: counted over the pixels) and of the viewer's window (its minimum and
      maximum: over the table they are the image's own only with a monotone rescale, whose
      extremes are the image's, not with a Modality LUT Sequence);
    - integers of at most 16 bits, and an image with several pixels per table entry.

    ``extremes``: the image's minimum and maximum stored values, when the caller has them."""
    if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        return None
    if voi is None and not _voi_lut_items_ok(ds) and not ("WindowCenter" in ds
                                                          and "WindowWidth" in ds):
        return None  # the robust window's percentiles are counted over the pixels
    if voi is not None and ds.get("ModalityLUTSequence"):
        return None
    low, high = extremes if extremes is not None else (int(stored.min()), int(stored.max()))
    if (high - low + 1) * _TABLE_MIN_PIXELS_PER_ENTRY > stored.size:
        return None
    values = np.arange(low, high + 1).astype(stored.dtype)
    return _grey_values(ds, values, voi), low


def _offsets(stored: np.ndarray, low: int) -> np.ndarray:
    """Each pixel's index into a table that starts at stored value ``low``."""
    if stored.dtype.kind == "u":
        return stored - stored.dtype.type(low)  # stays unsigned: low is the minimum
    return stored.astype(np.int32) - low


def _grey_values(ds: pydicom.Dataset, stored: np.ndarray, voi=None) -> np.ndarray:
    """The grey pipeline on each value of ``stored`` (see :func:`radiograph_to_float`)."""
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if voi is not None:
        out = voi(values)
    elif _voi_lut_items_ok(ds):
        out = _apply_voi_lut_sequence(values, ds)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = _apply_window(values, ds)
    else:
        out = _robust_window(values)
    # Inversion comes last: the VOI transform is defined on the stored polarity (PS3.3 C.11).
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def radiograph_windowed(ds: pydicom.Dataset, *, level: float, window: float) -> np.ndarray:
    """:func:`radiograph_to_float` with the viewer's window instead of the header's.

    ``level`` (the window's centre) and ``window`` (its width) are fractions of the image's range
    of modality values (stored values after the rescale or modality LUT): level 0.5 and window 1
    show the whole range linearly, a narrower window brings back detail that the header's window
    (or the percentile window) clipped. MONOCHROME1 is inverted last, as in the default pipeline.
    """
    if not (0.0 <= level <= 1.0 and 0.0 < window <= 2.0):
        raise InputError(f"window/level ({window}, {level}) out of range: level 0-1, window 0-2")

    def viewer_window(values: np.ndarray) -> np.ndarray:
        lo, hi = float(values.min()), float(values.max())
        width = window * (hi - lo)
        return (values - (lo + level * (hi - lo) - width / 2)) / width

    return _grey_to_float(ds, _decoded_pixels(ds), voi=viewer_window)


def resize_keep_aspect(img: np.ndarray, size: int) -> np.ndarray:
    """Scale a 2-D image so its longest side is ``size``, then pad with 0 to ``size × size``."""
    if img.ndim != 2:
        raise InputError(f"resize_keep_aspect takes a 2-D image, got shape {img.shape}")
    if size < 1:
        raise InputError(f"resize_keep_aspect size must be a positive integer, got {size}")
    channel_first = np.asarray(img, dtype=np.float32)[None]
    # Shrinking (the usual case: a 3000-px film to a few hundred) averages each source area,
    # which anti-aliases without the dark border that a zero-padded Gaussian pre-filter leaves;
    # enlarging interpolates bilinearly.
    mode = "area" if max(img.shape) >= size else "bilinear"
    resized = Resize(size, size_mode="longest", mode=mode)(channel_first)
    padded = SpatialPad((size, size), method="symmetric", mode="constant", value=0)(resized)
    return np.asarray(padded[0], dtype=np.float32)


def to_uint(img: np.ndarray, bits: int = 8) -> np.ndarray:
    """[0, 1] float image → uint8 (bits=8) or uint16 (bits=16), rounding to nearest."""
    dtypes = {8: np.uint8, 16: np.uint16}
    if bits not in dtypes:
        raise InputError(f"to_uint bits must be 8 or 16, got {bits}")
    if np.isnan(img).any():
        raise InputError("to_uint got NaN pixels; normalise with radiograph_to_float first")
    top = 2**bits - 1
    return np.rint(np.clip(img, 0.0, 1.0) * top).astype(dtypes[bits])
