"""Black boxes over the text found, in every frame, the pixels written back in the file's own
transfer syntax where pydicom can encode it (else uncompressed, the syntax changed to match),
and the cleaning recorded in the de-identification method attributes."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

METHOD_TEXT = "bonebase burned-in text redacted (OCR: Tesseract)"
# CID 7050 has no code for pixel cleaning by OCR; the Clean Pixel Data option is the closest.
METHOD_CODE = ("113101", "Clean Pixel Data Option")


def black_value(ds: Dataset, dtype: np.dtype) -> int:
    """The stored value displayed black: the lowest for MONOCHROME2 and colour, the highest
    for MONOCHROME1."""
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    stored = int(ds.get("BitsStored", 8 * dtype.itemsize) or 8 * dtype.itemsize)
    lo, hi = (-(1 << (stored - 1)), (1 << (stored - 1)) - 1) if signed else (0, (1 << stored) - 1)
    return hi if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1" else lo


def margin_box(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown by half its height (at least 4 pixels) on every side, inside the image."""
    x, y, w, h = box
    m = max(4, h // 2)
    return (max(0, x - m), max(0, y - m), min(shape[1], x + w + m), min(shape[0], y + h + m))


def redact(ds: Dataset, regions: list) -> Dataset:
    """Black out ``regions`` in every frame of ``ds`` (changed in place and returned)."""
    from pydicom.pixels import set_pixel_data

    arr = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    plane_shape = arr.shape[1:3] if frames > 1 else arr.shape[:2]
    black = black_value(ds, arr.dtype)
    for region in regions:
        x0, y0, x1, y1 = margin_box(region.box, plane_shape)
        if frames > 1:
            arr[:, y0:y1, x0:x1, ...] = black
        else:
            arr[y0:y1, x0:x1, ...] = black
    syntax = ds.file_meta.TransferSyntaxUID if "file_meta" in ds.__dict__ or hasattr(
        ds, "file_meta") else ExplicitVRLittleEndian
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples == 3 and photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converts YBR to RGB
    bits = int(ds.get("BitsStored", 8 * arr.dtype.itemsize))
    if syntax.is_compressed and syntax.is_encapsulated:
        try:
            ds.compress(syntax, arr, photometric_interpretation=photometric,
                        generate_instance_uid=False)
        except Exception:  # noqa: BLE001 - no encoder for this syntax (e.g. lossy JPEG)
            _store_native(ds, arr, photometric, bits, set_pixel_data)
    else:
        _store_native(ds, arr, photometric, bits, set_pixel_data)
    ds.BurnedInAnnotation = "NO"
    return ds


def _store_native(ds: Dataset, arr: np.ndarray, photometric: str, bits: int, setter) -> None:
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    setter(ds, arr, photometric, bits, generate_instance_uid=False)


def add_method(ds: Dataset) -> None:
    """Record the pixel cleaning in the de-identification method attributes."""
    methods = ds.get("DeidentificationMethod", [])
    methods = [methods] if isinstance(methods, str) else list(methods)
    if METHOD_TEXT not in methods:
        ds.DeidentificationMethod = [*methods, METHOD_TEXT]
    codes = ds.get("DeidentificationMethodCodeSequence")
    if codes is None:
        ds.DeidentificationMethodCodeSequence = pydicom.Sequence()
        codes = ds.DeidentificationMethodCodeSequence
    if not any(str(c.get("CodeValue", "")) == METHOD_CODE[0] for c in codes):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator = METHOD_CODE[0], "DCM"
        item.CodeMeaning = METHOD_CODE[1]
        codes.append(item)
