"""JPEG and PNG images named by a manifest, wrapped as DICOM Secondary Capture (docs/manifest.md).

One storage form for every image: a DICOM SC Image (1.2.840.10008.5.1.4.1.1.7) whose header is
built from the manifest row that names the file, then de-identified like any submitted file.

- A baseline (or 8-bit extended) JPEG keeps its own compressed bytes, encapsulated as JPEG
  Baseline (or JPEG Extended): no re-encoding, the decoded pixels are the JPEG's own. Its APPn
  segments (EXIF: camera, dates, GPS, names; XMP; ICC; comments) and anything after EOI are cut
  out of the stream without touching the scan data; only the Adobe APP14 segment stays, because
  it says how the components are to be read (RGB, YCbCr, CMYK).
- A PNG is stored losslessly as native pixels (Explicit VR Little Endian): 8-bit grey, 16-bit
  grey, 8-bit RGB exactly as decoded; a palette image expanded to RGB (the colours shown); an
  alpha channel that is opaque everywhere dropped.
- A JPEG whose EXIF orientation is not 1 is decoded, turned upright (a lossless permutation of
  the decoded pixels) and stored as native pixels: viewers and LabelMe show it upright, and the
  stored image must match its annotations. A CMYK JPEG has no DICOM form: it is decoded and
  converted to RGB. A progressive or arithmetic-coded JPEG has no DICOM transfer syntax kept
  here: stored as its decoded pixels. Every such change is a note (``Wrapped.notes``) that the
  receipt shows (``image_converted``).
- Refused, each with a reason: a corrupt or truncated file (``corrupt_image``), more pixels than
  BONEBASE_MAX_PIXELS (``too_many_pixels``, checked in the header before decoding), what the
  platform cannot store without changing pixels (``unsupported_image``: 12-bit or lossless JPEG,
  which Pillow does not decode; 16-bit colour PNG, which it cuts to 8 bits; transparency; grey
  below 8 bits). Damage inside a JPEG's compressed data that the decoder recovers from with a
  warning (it fills the rest) is not detected; a stream that ends early or breaks its markers is.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from bonebase.dicom.raster_jpeg import _RESEND, RasterError, jpeg_photometric, parse_jpeg

__all__ = ["RasterError", "RowValues", "Wrapped", "head", "image_modality", "sniff", "to_part10",
           "wrap"]

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
XRAY_DEFAULT = "DX"  # the modality of an image of a row that declares radiographs


@dataclass(frozen=True)
class RowValues:
    """What the header of an image is built from: the manifest row that names it (identifying
    values, memory only, de-identified with the rest of the header)."""

    row: int
    patient_id: str
    accession_number: str = ""
    study_date: str = ""  # YYYYMMDD, or empty
    sex: str = ""
    age: str = ""
    modalities: str = ""
    position: int = 1  # the image's place in the row's image_file list (InstanceNumber)
    case_id: str = ""  # the study's key when the row has no accession number or date


@dataclass
class Wrapped:
    """An image wrapped as DICOM: the data set (with Pixel Data), its first frame as decoded
    (for QC and OCR, which need not decode it again) and what was done to its pixels."""

    dataset: Dataset
    frame: np.ndarray
    notes: list[str] = field(default_factory=list)
    stripped: list[str] = field(default_factory=list)  # JPEG segments removed (APP1, COM ...)
    step: int = 1  # ``frame`` holds the image at 1/step of its size (a JPEG decoded scaled)


def head(path) -> bytes:
    """The first bytes of a file (not following a link); b'' when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as fh:
        return fh.read(8)


def sniff(head: bytes) -> str | None:
    """'jpeg', 'png' or None from a file's first bytes."""
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    return None


def check_pixels(rows: int, columns: int, name: str, max_pixels: int | None) -> None:
    if max_pixels is not None and rows * columns > max_pixels:
        raise RasterError(
            f"{name}: {columns} x {rows} pixels, over the limit of {max_pixels} "
            "(BONEBASE_MAX_PIXELS); send a smaller export of the image",
            reason="too_many_pixels")
    if rows < 1 or columns < 1:
        raise RasterError(f"{name}: the image claims zero width or height; {_RESEND}",
                          reason="corrupt_image")


def _open(data: bytes, name: str, kind: str, scale: int = 1):
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # our own pixel limit is checked before
            im = Image.open(io.BytesIO(data))
            if scale > 1:
                # libjpeg's DCT scaling: every coefficient is still read (a truncated or
                # corrupt stream fails as at full size), the inverse transform is 1/scale.
                # (Pillow picks the largest scale whose size is at least the one asked for.)
                im.draft(im.mode, (max(1, im.width // scale), max(1, im.height // scale)))
            im.load()  # the whole image: a truncated or corrupt file fails here
        return im
    except Image.DecompressionBombError:  # Pillow's own limit, when ours was set above it
        raise RasterError(f"{name}: more pixels than the image decoder accepts (Pillow's "
                          "MAX_IMAGE_PIXELS); send a smaller export of the image",
                          reason="too_many_pixels") from None
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on a broken file
        label = "JPEG" if kind == "jpeg" else "PNG"
        raise RasterError(f"{name}: the {label} file is corrupt or truncated "
                          f"({type(exc).__name__}); {_RESEND}", reason="corrupt_image") from None


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - an unreadable EXIF block says nothing
        return 1


# EXIF orientation -> the transposition that turns the image upright (as Pillow's
# ImageOps.exif_transpose and LabelMe do).
_TURNS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
          6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def _turn(im, orientation: int, notes: list[str]):
    """``im`` turned upright per its EXIF ``orientation`` (a permutation of its pixels)."""
    from PIL import Image

    if orientation not in _TURNS:
        return im
    notes.append(f"turned upright per its EXIF orientation {orientation} (stored as its "
                 "decoded pixels)")
    return im.transpose(getattr(Image.Transpose, _TURNS[orientation]))


def _png_header(data: bytes, name: str) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the PNG's IHDR, before any decoding."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise RasterError(f"{name}: the PNG file is corrupt or truncated (no image header); "
                          f"{_RESEND}", reason="corrupt_image")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def _unsupported(name: str, what: str) -> RasterError:
    return RasterError(f"{name}: {what}, which the platform cannot store without changing its "
                       "pixels; export it as an 8- or 16-bit greyscale or 8-bit RGB PNG, a "
                       "JPEG, or DICOM, and resubmit", reason="unsupported_image")


def _png_pixels(data: bytes, name: str, notes: list[str]) -> np.ndarray:
    width, height, depth, colour = _png_header(data, name)
    if colour in (2, 4, 6) and depth == 16:
        raise _unsupported(name, "a 16-bit colour PNG")  # Pillow would cut it to 8 bits
    if colour == 0 and depth < 8:
        raise _unsupported(name, f"a {depth}-bit greyscale PNG")
    im = _open(data, name, "png")
    im = _turn(im, _orientation(im), notes)
    if im.mode == "P":
        if "transparency" in im.info:
            im = im.convert("RGBA")
        else:
            im = im.convert("RGB")
            notes.append("palette expanded to RGB (the colours as shown)")
    if im.mode in ("RGBA", "LA", "PA"):
        arr = np.asarray(im)
        if arr[..., -1].min() != arr[..., -1].max() or arr[..., -1].max() not in (255,):
            raise _unsupported(name, "a PNG with transparent pixels")
        im = im.convert("RGB" if im.mode != "LA" else "L")
        notes.append("opaque alpha channel dropped")
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype("<u2")
    if im.mode == "I":  # 16-bit grey as some Pillow versions give it
        arr = np.asarray(im)
        if arr.min() < 0 or arr.max() > 65535:
            raise _unsupported(name, "a PNG with values outside 16 bits")
        return arr.astype("<u2")
    if im.mode not in ("L", "RGB"):
        raise _unsupported(name, f"a PNG of mode {im.mode}")
    return np.asarray(im)


# -- the data set ----------------------------------------------------------------------------

def wrap(data: bytes, *, name: str, row: RowValues, site: str, source_sha256: str,
         max_pixels: int | None = None, scale: Callable[[int, int], int] | None = None
         ) -> Wrapped:
    """The Secondary Capture data set of one JPEG or PNG (``data``, its bytes), its header from
    ``row``. Raises RasterError (corrupt_image, too_many_pixels, unsupported_image).

    ``scale(rows, columns)``: for a JPEG that keeps its own bytes (whose decoded pixels are
    needed only to validate it and for QC and OCR, which read a reduced copy), the factor (1, 2,
    4 or 8) to decode it reduced by; ``Wrapped.step`` says what was used. Anything stored as
    decoded pixels is decoded whole."""
    kind = sniff(data[:8])
    notes: list[str] = []
    stripped: list[str] = []
    encapsulated: bytes | None = None
    syntax = ExplicitVRLittleEndian
    photometric = None
    step = 1
    if kind == "jpeg":
        stream = parse_jpeg(data, name)
        check_pixels(stream.rows, stream.columns, name, max_pixels)
        if stream.precision != 8 or stream.sof in (0xC3, 0xC7, 0xCB, 0xCF):
            raise _unsupported(name, f"a {stream.precision}-bit or lossless JPEG")
        stripped = stream.stripped
        turn = _orientation(_open_header(data))  # EXIF is read before it is cut out
        photometric = jpeg_photometric(stream)
        kept = stream.sof in (0xC0, 0xC1) and photometric is not None and turn in (0, 1)
        step = scale(stream.rows, stream.columns) if kept and scale is not None else 1
        if step not in (1, 2, 4, 8):
            raise ValueError(f"a JPEG is decoded at 1/1, 1/2, 1/4 or 1/8, not 1/{step}")
        im = _open(stream.clean, name, "jpeg", step)  # the whole stream decoded: validated
        if step > 1 and im.size != (-(-stream.columns // step), -(-stream.rows // step)):
            step, im = 1, _open(stream.clean, name, "jpeg")  # another scale: decoded whole
        if kept:
            encapsulated = stream.clean
            syntax = JPEGBaseline8Bit if stream.sof == 0xC0 else JPEGExtended12Bit
        else:
            photometric = None
            if stream.sof not in (0xC0, 0xC1):
                coding = "progressive" if stream.sof in (0xC2, 0xC6, 0xCA, 0xCE) else \
                    "arithmetic-coded"
                notes.append(f"{coding} JPEG (no DICOM transfer syntax keeps it): stored as its "
                             "decoded pixels")
            if im.mode not in ("L", "RGB"):
                notes.append(f"{im.mode} JPEG converted to RGB (DICOM has no CMYK)")
                im = im.convert("RGB")
            im = _turn(im, turn, notes)
        frame = np.asarray(im)
    elif kind == "png":
        width, height, _, _ = _png_header(data, name)
        check_pixels(height, width, name, max_pixels)
        frame = _png_pixels(data, name, notes)
    else:
        raise RasterError(f"{name}: neither JPEG nor PNG; {_RESEND}", reason="corrupt_image")
    ds = _header(row, site=site, source_sha256=source_sha256)
    _pixel_module(ds, frame, photometric)
    if step > 1:  # the frame is reduced; the stored image is the JPEG's own
        ds.Rows, ds.Columns = stream.rows, stream.columns
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    if encapsulated is not None:
        ds.PixelData = encapsulate([encapsulated])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.PixelData = np.ascontiguousarray(frame).astype(  # no copy for uint8
            frame.dtype.newbyteorder("<"), copy=False).tobytes()
        ds["PixelData"].VR = "OW" if frame.dtype.itemsize == 2 else "OB"
    return Wrapped(ds, frame, notes, stripped, step)


def _open_header(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data))  # the header only: for the EXIF block


def _pixel_module(ds: Dataset, frame: np.ndarray, photometric: str | None) -> None:
    ds.Rows, ds.Columns = int(frame.shape[0]), int(frame.shape[1])
    colour = frame.ndim == 3
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if colour else "MONOCHROME2")
    if colour:
        ds.PlanarConfiguration = 0
    bits = 16 if frame.dtype.itemsize == 2 else 8
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0


def _header(row: RowValues, *, site: str, source_sha256: str) -> Dataset:
    """The SC header from the manifest row (identifying: de-identified by the caller's step).

    UIDs derive from the row's keys and the file's content, so a resubmission builds the same
    UIDs (and de-identification maps them to the same pseudonymous UIDs)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    # Stable across resubmissions (a row number is not: rows move when a manifest is edited).
    study_key = row.accession_number or row.study_date or f"case-{row.case_id or row.row}"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["bonebase-raster-study", site,
                                                     row.patient_id, study_key])
    modality = image_modality(row.modalities)
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bonebase-raster-series", site,
                                                      row.patient_id, study_key, modality])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["bonebase-raster-instance", source_sha256])
    ds.PatientID = row.patient_id
    ds.PatientName = ""
    ds.PatientSex = row.sex.upper() if row.sex.upper() in ("M", "F", "O") else ""
    age = row.age.strip()
    if age.isdigit() and int(age) < 1000:
        ds.PatientAge = f"{int(age):03d}Y"
    ds.AccessionNumber = row.accession_number
    ds.StudyDate = row.study_date if _is_date(row.study_date) else ""
    ds.Modality = modality
    ds.ConversionType = "WSD"  # a workstation's export, not a modality's image
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = row.position
    return ds


def image_modality(modalities: str) -> str:
    """The Modality of an image from the row's declared study types: DX when radiographs (XR)
    are among them, else the only one declared (CT, MR), else OT."""
    tokens = {t.strip().upper() for t in modalities.replace(",", ";").split(";") if t.strip()}
    if "XR" in tokens or tokens & {"CR", "DX"}:
        return XRAY_DEFAULT
    if len(tokens) == 1:
        return tokens.pop()
    return "OT"


def _is_date(text: str) -> bool:
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def to_part10(ds: Dataset) -> bytes:
    """The data set as DICOM Part 10 bytes."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
