"""Value helpers for de-identification: decoding, building elements, dummies, date shifts."""

from __future__ import annotations

import datetime as dt
import re
import struct
from functools import lru_cache

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

DUMMY_TEXT = "ANONYMIZED"
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS", "AE", "UR"})
_NUMERIC_VRS = frozenset({"IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})


def pixel_data_offset(data: bytes) -> int:
    """Where (7FE0,0010) starts in an encoded file (little or big endian), else the end."""
    found = [data.find(tag, 132) for tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")]
    return min((i for i in found if i >= 0), default=len(data))


def encoding_of(ds: Dataset) -> tuple[bool | None, bool | None, str | list[str] | None]:
    """(implicit VR, little endian, character set) the data set was read with."""
    implicit, little = ds.original_encoding
    return implicit, little, ds.original_character_set


def vr_of(tag: int) -> str:
    """The dictionary VR of a tag, UN when pydicom does not know it."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def is_multi(value: object) -> bool:
    """True for a multi-valued element value."""
    return isinstance(value, MultiValue | list | tuple)


# Raw values of these VRs are plain text; decoding them here is several times cheaper than
# pydicom's general conversion (hooks, charset switching), which the walk would otherwise pay
# for every attribute it inspects. Anything else goes through pydicom.
_ASCII_VRS = frozenset({"UI", "DA", "DT", "TM", "AS", "CS"})
_CHARSET_VRS = frozenset({"LO", "SH", "PN", "ST", "LT", "UT", "UC"})
CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


def decoded(
    src: Dataset, raw: DataElement | RawDataElement, vr: str, codec: str | None
) -> DataElement:
    """The element with its value decoded, without converting it inside ``src``."""
    if isinstance(raw, RawDataElement) and raw.value is not None:
        if vr in _ASCII_VRS:
            text = raw.value.decode("latin-1")
        elif vr in _CHARSET_VRS and codec is not None:
            text = raw.value.decode(codec, "replace")
        else:
            return src[raw.tag]
        text = text.rstrip(" \x00")
        return element(raw.tag, vr, text if text else None)
    return src[raw.tag]


def element(tag: int, vr: str, value: object) -> DataElement:
    """A new element, not re-validated (see the comment)."""
    # Values written here come from the input or from this module: re-validating each one
    # would double the cost of the walk, and the writer checks what it encodes.
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


# VRs whose values the walk encodes itself, as pydicom's writer would (PS3.5 6.2): ASCII text
# (UIDs padded with NUL, the rest with a space; ASCII is the same bytes in every character set
# DICOM allows) and binary integers. Anything else is left to pydicom as a DataElement.
_RAW_TEXT_VRS = frozenset({"UI", "DA", "DT", "TM", "CS", "AS", "SH", "LO", "PN"})
_RAW_INT_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l"}


def raw_value(vr: str, value: object, little: bool) -> bytes | None:
    """``value`` encoded for ``vr``, or None when pydicom should encode it."""
    if value is None or value == "":
        return b""
    values = list(value) if is_multi(value) else [value]
    if vr in _RAW_INT_VRS:
        if not all(type(v) is int for v in values):
            return None
        try:
            return struct.pack(("<" if little else ">") + _RAW_INT_VRS[vr] * len(values), *values)
        except struct.error:  # out of range: pydicom reports it
            return None
    if vr not in _RAW_TEXT_VRS or not all(isinstance(v, str) for v in values):
        return None
    text = "\\".join(values)
    if not text.isascii():
        return None
    data = text.encode("ascii")
    return data + (b"\0" if vr == "UI" else b" ") if len(data) % 2 else data


def raw_element(tag: int, vr: str, data: bytes, *, implicit: bool, little: bool
                ) -> RawDataElement:
    """An element holding already encoded ``data`` (see :func:`raw_value`): writing it is a copy
    of bytes (:mod:`bonebase.dicom.encode`), and reading it decodes the value as from a file."""
    return RawDataElement(BaseTag(tag), vr, len(data), data, 0, implicit, little, True, False)


def dataset(*elements: DataElement) -> Dataset:
    """A data set holding ``elements``."""
    return Dataset({e.tag: e for e in elements})


def dummy(elem: DataElement) -> object:
    """A dummy value of the element's VR for the D action."""
    if elem.VR in _NUMERIC_VRS:
        return 0
    if elem.VR in TEXT_VRS:
        return DUMMY_TEXT if elem.VR != "AE" else "ANONYMOUS"
    if elem.VR == "AS":
        return None
    return b"\x00\x00"  # OB/OW/UN and other binary: no original bytes survive


def shift_value(text: str, offset: dt.timedelta, *, dt_vr: bool) -> str | None:
    """Shift a DA (YYYYMMDD, also ACR-NEMA YYYY.MM.DD) or the date part of a DT value."""
    if not dt_vr:
        digits = text.replace(".", "")
        if len(digits) != 8 or not digits.isdigit():
            return None
        return shift_date(digits, offset)
    match = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(.*)", text)
    if match is None:
        return None
    year, month, day, rest = match.groups()
    precision = 4 + (2 if month else 0) + (2 if day else 0)
    # Partial dates (YYYY or YYYYMM) shift as their first day, then keep their precision.
    shifted = shift_date(f"{year}{month or '01'}{day or '01'}", offset)
    return None if shifted is None else shifted[:precision] + rest


@lru_cache(maxsize=65536)
def shift_date(yyyymmdd: str, offset: dt.timedelta) -> str | None:
    """Shift a YYYYMMDD date; None when it is no valid date."""
    try:
        day = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
        return (day + offset).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None
