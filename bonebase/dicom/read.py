"""Reading submitted DICOM files: headers for ingestion, full objects with a pixel-length check.

Every failure is a :class:`DicomReadError` with a reason code that goes into quarantine:
``non_dicom`` (not a DICOM file at all), ``corrupt_file`` (truncated or unreadable),
``unsupported_transfer_syntax`` (an encoding the platform does not store), and for hostile files
(issue #15) ``too_deeply_nested`` (sequences nested past MAX_NESTING), ``too_many_pixels`` (an
image claiming more than the pixel limit) and ``decompression_bomb`` (a deflated file that
inflates past what its header claims). See :mod:`bonebase.dicom.bounded`.
"""

from __future__ import annotations

import io
import math
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pydicom.valuerep import AMBIGUOUS_VR

from bonebase.errors import InputError

NATIVE_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
    }
)
# Still-image compression that pydicom decodes with its plugins (pylibjpeg, openjpeg, RLE).
# Video syntaxes (MPEG, HEVC), JPIP and private syntaxes are not stored.
COMPRESSED_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.5",  # RLE Lossless
    }
)
SUPPORTED_SYNTAXES = NATIVE_SYNTAXES | COMPRESSED_SYNTAXES
_UNDEFINED = 0xFFFFFFFF
_RESEND = "the site should export the image again from its PACS as a DICOM Part 10 file"


class DicomReadError(InputError):
    """A submitted file cannot be read as DICOM; ``reason`` is the quarantine reason code."""

    def __init__(self, message: str, *, reason: str, file: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.file = file


def _name(source: object) -> str:
    if isinstance(source, str | PathLike):
        return str(source)
    return "<bytes>"


def _truncated(ds: pydicom.Dataset) -> bool:
    """True when the last element read is shorter than its declared length (a cut-off file)."""
    keys = list(ds.keys())
    if not keys:
        return True
    last = ds.get_item(keys[-1])
    if isinstance(last, RawDataElement) and last.length != _UNDEFINED:
        return len(last.value or b"") < last.length
    return False


def _check_syntax(ds: pydicom.Dataset, name: str) -> None:
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts and ts not in SUPPORTED_SYNTAXES:
        label = UID(ts).name if UID(ts).is_transfer_syntax else "unknown"
        raise DicomReadError(
            f"{name}: transfer syntax {ts} ({label}) is not supported; the site should send "
            "uncompressed, JPEG, JPEG-LS, JPEG 2000 or RLE images",
            reason="unsupported_transfer_syntax",
            file=name,
        )


def _looks_like_broken_dicom(source: str | PathLike | BinaryIO, name: str) -> bool:
    """A damaged DICOM file rather than some other file: the Part 10 preamble of 128 zero
    bytes is still there, or the site named it as DICOM (.dcm/.dicom)."""
    if name.lower().endswith((".dcm", ".dicom")):
        return True
    if hasattr(source, "seek"):
        source.seek(0)
        head = source.read(132)
    else:
        with open(source, "rb") as fh:
            head = fh.read(132)
    return len(head) == 132 and head[:128] == bytes(128)


def _read(source: str | PathLike | BinaryIO, name: str, *, pixels: bool,
          max_pixels: int | None = None) -> pydicom.Dataset:
    from bonebase.dicom.bounded import check_nesting, check_pixels, guard_deflated

    try:
        if max_pixels is not None:
            guard_deflated(source, name, max_pixels)  # before pydicom inflates a deflated file
        try:
            ds = pydicom.dcmread(source, stop_before_pixels=not pixels)
        except InvalidDicomError:
            # No 'DICM' preamble: old ACR-NEMA style objects still parse as a bare data set;
            # anything else (a JPEG, a PDF, a text file) yields no SOP identity.
            if hasattr(source, "seek"):
                source.seek(0)
            ds = pydicom.dcmread(source, stop_before_pixels=not pixels, force=True)
            sop_class = str(peek(ds, "SOPClassUID", ""))
            if not (UID(sop_class).is_valid and peek(ds, "SOPInstanceUID")):
                if _looks_like_broken_dicom(source, name):
                    raise DicomReadError(
                        f"{name}: a DICOM file whose header is damaged (the 'DICM' marker and "
                        f"data set cannot be read); {_RESEND}",
                        reason="corrupt_file",
                        file=name,
                    ) from None
                raise DicomReadError(
                    f"{name}: not a DICOM file (no 'DICM' preamble and no DICOM data set "
                    "inside); remove files that are not DICOM images from the submission",
                    reason="non_dicom",
                    file=name,
                ) from None
        check_nesting(ds, name)  # before anything walks the data set recursively
        if max_pixels is not None:
            check_pixels(ds, name, max_pixels)  # from the header: nothing decoded yet
    except DicomReadError:
        raise
    except RecursionError:
        raise DicomReadError(
            f"{name}: the DICOM header nests sequences too deeply to be read safely; {_RESEND}",
            reason="too_deeply_nested", file=name) from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DicomReadError(
            f"{name}: the DICOM file is corrupt ({type(exc).__name__}: {exc}); {_RESEND}",
            reason="corrupt_file",
            file=name,
        ) from exc
    if _truncated(ds):
        raise DicomReadError(
            f"{name}: the DICOM file is truncated (it ends inside an element); {_RESEND}",
            reason="corrupt_file",
            file=name,
        )
    _check_syntax(ds, name)
    return ds


def peek(ds: pydicom.Dataset, keyword: str, default: object = None) -> object:
    """``ds.get(keyword, default)`` that leaves the element as it was read.

    pydicom's ``get`` replaces a raw element with its decoded form inside the data set.
    De-identification copies raw elements byte for byte but has to encode decoded ones again,
    so the reads made before it (the header row, QC, the pixel-length check) go through here.
    Elements pydicom must resolve against the data set (ambiguous VRs, deferred values,
    sequences) are read with ``get``.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:  # not a keyword: whatever get says
        return ds.get(keyword, default)
    elem = ds.get_item(tag)
    if elem is None:
        return default
    if not isinstance(elem, RawDataElement):
        return elem.value
    vr = elem.VR or dictionary_VR(tag)  # implicit VR: the dictionary's
    if (elem.value is None and elem.length != 0) or vr == "SQ" or vr in AMBIGUOUS_VR:
        return ds.get(keyword, default)
    encoding = default_encoding if tag == 0x00080005 else (
        ds.original_character_set or ds._character_set)
    return convert_raw_data_element(elem, encoding=encoding, ds=ds).value


def read_header(path: Path | str, *, max_pixels: int | None = None) -> pydicom.Dataset:
    """Read the header (everything before Pixel Data) of one DICOM file."""
    return _read(path, str(path), pixels=False, max_pixels=max_pixels)


def expected_pixel_bytes(ds: pydicom.Dataset) -> int:
    """Bytes that native (uncompressed) Pixel Data must hold, from the image pixel module."""
    bits = int(peek(ds, "BitsAllocated", 0) or 0)
    count = (
        int(peek(ds, "Rows", 0) or 0)
        * int(peek(ds, "Columns", 0) or 0)
        * int(peek(ds, "SamplesPerPixel", 1) or 1)
        * int(peek(ds, "NumberOfFrames", 1) or 1)
    )
    return math.ceil(count * bits / 8)


def read_full(source: Path | str | bytes | BinaryIO, *,
              max_pixels: int | None = None) -> pydicom.Dataset:
    """Read a whole DICOM object and check that its Pixel Data is complete.

    With ``max_pixels``, an image claiming more pixels is refused (``too_many_pixels``) before its
    Pixel Data is read, and a deflated file before it is inflated past its claim.
    """
    name = _name(source)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    ds = _read(source, name, pixels=True, max_pixels=max_pixels)
    if "PixelData" not in ds:
        raise DicomReadError(
            f"{name}: the DICOM file has no Pixel Data (7FE0,0010); {_RESEND}",
            reason="corrupt_file",
            file=name,
        )
    data = ds.PixelData
    ts = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    if ts in NATIVE_SYNTAXES:
        expected = expected_pixel_bytes(ds)
        # One padding byte is allowed: values have even length.
        if not expected <= len(data) <= expected + 1:
            raise DicomReadError(
                f"{name}: Pixel Data holds {len(data)} bytes but Rows x Columns x Samples x "
                f"BitsAllocated/8 x Frames = {expected}; {_RESEND}",
                reason="corrupt_file",
                file=name,
            )
    elif not data.startswith(b"\xfe\xff\x00\xe0"):  # encapsulated: must start with an item
        raise DicomReadError(
            f"{name}: compressed Pixel Data is not encapsulated in items; {_RESEND}",
            reason="corrupt_file",
            file=name,
        )
    return ds


def _float(value: object, index: int) -> float | None:
    if not isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = [value]
    try:
        return float(value[index])  # type: ignore[index]
    except (TypeError, IndexError, ValueError):
        return None


def _int(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _str(value: object) -> str | None:
    return None if value in (None, "") else str(value).strip()


def header_record(ds: pydicom.Dataset, *, file: str) -> dict[str, object]:
    """Flatten the header into one row for validation (spacings as row/column floats)."""
    meta = getattr(ds, "file_meta", None)
    spacing = peek(ds, "PixelSpacing")
    imager = peek(ds, "ImagerPixelSpacing")
    return {
        "file": file,
        "sop_instance_uid": _str(peek(ds, "SOPInstanceUID")),
        "study_instance_uid": _str(peek(ds, "StudyInstanceUID")),
        "series_instance_uid": _str(peek(ds, "SeriesInstanceUID")),
        "patient_id": _str(peek(ds, "PatientID")),
        "accession_number": _str(peek(ds, "AccessionNumber")),
        "modality": _str(peek(ds, "Modality")),
        "rows": _int(peek(ds, "Rows")),
        "columns": _int(peek(ds, "Columns")),
        "bits_allocated": _int(peek(ds, "BitsAllocated")),
        "bits_stored": _int(peek(ds, "BitsStored")),
        "photometric_interpretation": _str(peek(ds, "PhotometricInterpretation")),
        "pixel_spacing": _float(spacing, 0),
        "pixel_spacing_col": _float(spacing, 1),
        "imager_pixel_spacing": _float(imager, 0),
        "imager_pixel_spacing_col": _float(imager, 1),
        "transfer_syntax_uid": _str(meta.get("TransferSyntaxUID")) if meta is not None else None,
        "number_of_frames": _int(peek(ds, "NumberOfFrames")) or 1,
        "burned_in_annotation": _str(peek(ds, "BurnedInAnnotation")),
        "sop_class_uid": _str(peek(ds, "SOPClassUID")),
        "patient_sex": _str(peek(ds, "PatientSex")),
        "patient_age": _str(peek(ds, "PatientAge")),
        "body_part_examined": _str(peek(ds, "BodyPartExamined")),
    }
