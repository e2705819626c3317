"""Radiograph pixels → the one float image that training, serving and the viewer all use.

MONAI's DICOM reader applies only the modality LUT; a radiograph needs the whole grayscale
pipeline of PS3.3 C.11 to look (and train) like it does on a workstation: modality LUT →
VOI LUT (or window) → MONOCHROME1 inversion, in that order.
"""

from __future__ import annotations

import numpy as np
import pydicom
from monai.transforms import Resize, SpatialPad
from pydicom.pixels import apply_modality_lut
from pydicom.pixels.processing import apply_voi, apply_windowing

from bonebase.errors import InputError

# Fallback window when the header carries none: percentiles ignore the few saturated or dead
# pixels (collimator edges, burned-in markers) that would squash a min/max window.
ROBUST_PERCENTILES = (0.5, 99.5)
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


def _describe(ds: pydicom.Dataset) -> str:
    uid = ds.get("SOPInstanceUID")
    return f"instance {uid}" if uid else "dataset"


def _decoded_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """The stored values as a 2-D array, or InputError saying why the dataset is no radiograph."""
    where = _describe(ds)
    if "PixelData" not in ds:
        raise InputError(f"{where} has no Pixel Data (7FE0,0010); it is not an image")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in _GRAYSCALE:
        raise InputError(
            f"{where} has Photometric Interpretation {photometric!r}; a radiograph must be "
            "MONOCHROME1 or MONOCHROME2"
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames != 1:
        raise InputError(
            f"{where} has {frames} frames (0028,0008); radiograph normalisation takes one "
            "2-D frame: split the series or use the CT/MR reader"
        )
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise InputError(
            f"cannot decode the pixels of {where} (transfer syntax {syntax}): {exc}; "
            "compressed syntaxes need pylibjpeg / pylibjpeg-libjpeg / pylibjpeg-openjpeg"
        ) from exc
    if arr.ndim != 2:
        raise InputError(f"{where} decodes to shape {arr.shape}; a radiograph is one 2-D frame")
    return arr


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
    stored = _decoded_pixels(ds)
    if stored.size == 0 or stored.min() == stored.max():
        # A blank image carries nothing to window; zeros (not NaN, not mid-grey) for all callers.
        return np.zeros(stored.shape, dtype=np.float32)
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if _voi_lut_items_ok(ds):
        out = _apply_voi_lut_sequence(values, ds)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = _apply_window(values, ds)
    else:
        out = _robust_window(values)
    # Inversion comes last: the VOI transform is defined on the stored polarity (PS3.3 C.11).
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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
