"""Identifying values taken from an input data set, and scans of an output for any of them.

The scans are the check after de-identification: a value that identified the patient in the
input (a name, an ID, the birth date, the accession number, the institution...) must not appear
anywhere in the output, neither in an element value nor in the encoded bytes. Residue reports
(:class:`Residue`) name the element and the kind of value found, never the value itself, so that
the report can be stored, logged and shown to people who may not see the value.

Which matches count (docs/quarantine.md, "What counts as residue"): a value of a kind that is
routinely also a vendor's or a device's name (the institution's name or department, the station
name) does not count in an equipment attribute (Manufacturer, model name, software versions...),
nor where each of its occurrences is only part of a longer token ("TOSHIBA" in Manufacturer
"TOSHIBA_MEC"). Every other kind (person names, IDs, dates, addresses, UIDs) always counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import AnyStr

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

# Attributes whose values identify a patient, a person or a place wherever they occur.
IDENTIFYING_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "AccessionNumber",
    "AdmissionID",
    "StudyID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PersonAddress",
    "PersonTelephoneNumbers",
    "StationName",
    "DeviceSerialNumber",
    "MilitaryRank",
    "RegionOfResidence",
)
IDENTIFYING_TAGS: frozenset[int] = frozenset(tag_for_keyword(k) for k in IDENTIFYING_KEYWORDS)

# The kind of value each identifying attribute holds: what a residue report names.
_KINDS = {
    **dict.fromkeys(("PatientID", "OtherPatientIDs", "IssuerOfPatientID", "MedicalRecordLocator"),
                    "patient ID"),
    **dict.fromkeys(("AccessionNumber", "AdmissionID", "StudyID", "RequestedProcedureID",
                     "ScheduledProcedureStepID", "PerformedProcedureStepID"),
                    "study or visit ID"),
    "PatientBirthDate": "birth date",
    **dict.fromkeys(("PatientAddress", "InstitutionAddress", "ReferringPhysicianAddress",
                     "PersonAddress", "RegionOfResidence"), "address"),
    **dict.fromkeys(("PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers",
                     "PersonTelephoneNumbers"), "telephone number"),
    **dict.fromkeys(("InstitutionName", "InstitutionalDepartmentName"), "institution name"),
    "StationName": "station name",
    "DeviceSerialNumber": "device serial number",
    "MilitaryRank": "military rank",
    "UID": "original UID",
}
#: Kinds of value that are routinely also a vendor's or a device's name ("TOSHIBA" as a site's
#: InstitutionName, a scanner's StationName): judged by the rule in the module's docstring.
VENDOR_LIKE_KINDS = frozenset({"institution name", "station name"})
#: Attributes that name equipment (its maker, model and software), not a patient or a place.
EQUIPMENT_TAGS = frozenset(tag_for_keyword(k) for k in (
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
    "SecondaryCaptureDeviceManufacturer", "SecondaryCaptureDeviceManufacturerModelName",
    "SecondaryCaptureDeviceSoftwareVersions", "DetectorManufacturerName",
    "DetectorManufacturerModelName", "DeviceDescription", "ImplementationVersionName",
))
# Characters that join words into one token ("TOSHIBA_MEC", "GE-OEC", "Philips.DX"); a value
# joined by one of them to a further letter or digit is part of a longer token.
_JOINERS = "_-./+"


def kind_of(source: str) -> str:
    """The kind of identifying value an attribute holds ("person name", "patient ID"...)."""
    if source in _KINDS:
        return _KINDS[source]
    tag = tag_for_keyword(source)
    try:
        if tag is not None and dictionary_VR(tag) == "PN":
            return "person name"
    except KeyError:
        pass
    return "identifying value"


@dataclass(frozen=True)
class Residue:
    """An identifying value found after de-identification: in which attribute, and which input
    attribute (so which kind of value) it came from; never the value itself."""

    attribute: str  # "(0008,0070) Manufacturer", or ENCODED for bytes no element explains
    source: str  # the input attribute the value was read from: "InstitutionName"

    @property
    def kind(self) -> str:
        return kind_of(self.source)

    def __str__(self) -> str:
        return f"{self.attribute} holds the {self.source} value ({self.kind})"


#: The attribute of a value found in the encoded bytes but in no single element's value.
ENCODED = "the encoded header"


def summary(found: list[Residue], *, limit: int = 5) -> str:
    """``found`` as one bounded line: at most ``limit`` named, then "and K more"."""
    named = "; ".join(str(r) for r in found[:limit])
    rest = len(found) - limit
    return f"{named}; and {rest} more" if rest > 0 else named


# Values too generic to count as identifying (placeholders sites put in empty fields).
GENERIC_VALUES = frozenset(
    {
        "anonymous",
        "anonymized",
        "anon",
        "unknown",
        "none",
        "null",
        "n/a",
        "na",
        "test",
        "yes",
        "no",
        "other",
        "removed",
        "dr.",
        "mrs",
        "hospital",
        "radiology",
    }
)
_MIN_LEN = 3
_MIN_NUMERIC_LEN = 5  # short numbers (IDs like "123") would match unrelated numbers and sizes


def usable(value: str) -> bool:
    """True for a value specific enough to search for (not short, generic or a small number)."""
    text = value.strip()
    if len(text) < _MIN_LEN or text.casefold() in GENERIC_VALUES:
        return False
    digits = text.replace(".", "").replace("-", "")
    return not (digits.isdigit() and len(digits) < _MIN_NUMERIC_LEN)


def values_of(value: object) -> list[str]:
    """Flatten an element value (str, PersonName, MultiValue) into usable identifying strings."""
    if value is None:
        return []
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    found: list[str] = []
    for item in items:
        if isinstance(item, PersonName):
            text = str(item)
            parts = [p for p in re.split(r"[\^=]", text) if p]
            found.extend(p.strip() for p in [text.replace("^", " ").strip(), *parts])
        elif isinstance(item, str):
            found.append(item.strip())
            # Addresses and free text: each line of a multi-line value on its own as well.
            found.extend(line.strip() for line in re.split(r"[\r\n\\]", item) if line)
    return [v for v in dict.fromkeys(found) if usable(v)]


def _text_of(elem: DataElement) -> str:
    value = elem.value
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return "" if value is None or isinstance(value, bytes) else str(value)


# Identifying values match as whole words, case-insensitively: a three-letter name component
# must not hit inside an unrelated word ("pre" in "PREDECESSOR"), while "Doe" in "seen by Dr
# Doe" must. Both sides are reduced to their words joined by single spaces, so a match is a
# plain substring test (fast on thousands of files) and ignores punctuation ("Doe^John").
_WORD = re.compile(r"[^\W_]+")
_BYTE_WORD = re.compile(rb"[a-z0-9\x80-\xff]+")


@lru_cache(maxsize=65536)
def _words(value: str) -> str:
    return " " + " ".join(_WORD.findall(value.casefold())) + " "


@lru_cache(maxsize=65536)
def _byte_words(value: str) -> tuple[bytes, ...]:
    forms = []
    for codec in ("utf-8", "latin-1"):
        try:
            words = _BYTE_WORD.findall(value.casefold().encode(codec))
        except UnicodeEncodeError:
            continue
        forms.append(b" " + b" ".join(words) + b" ")
    return tuple(dict.fromkeys(forms))


class Matcher:
    """Finds which identifying values occur in a text or in bytes (as whole words)."""

    def __init__(self, identifiers: dict[str, str]) -> None:
        """``identifiers`` maps each identifying value to the keyword it came from."""
        self._entries = [
            (value, _words(value), _byte_words(value), src)
            for value, src in identifiers.items()
            if _words(value).strip()
        ]
        # Each value's words, longest first: every word of a text's word string is a piece of
        # the folded text, so a text holding a value as whole words holds each of its words as
        # a plain substring. Those substring tests come first; the whole-word search runs only
        # for the values that pass them, so a clean header is never split into words (the
        # costly part: ~1 ms on a 30 kB header).
        self._keys = [_by_length(norm.split()) for _, norm, _, _ in self._entries]
        self._byte_keys = [tuple((f, _by_length(f.split())) for f in forms if f.strip())
                           for _, _, forms, _ in self._entries]

    def in_text(self, text: str) -> list[tuple[str, str]]:
        """(value, source keyword) of every identifying value in ``text``."""
        if not text:
            return []
        folded = text.casefold()
        return [(value, src)
                for (value, norm, _, src), keys in zip(self._entries, self._keys, strict=True)
                if all(k in folded for k in keys) and _word_re(norm).search(folded)]

    def in_bytes(self, data: bytes) -> list[str]:
        """Source keywords of the identifying values in ``data`` (ASCII case-insensitive)."""
        if not data:
            return []
        lowered = data.lower()
        return [src for (_, _, _, src), forms in zip(self._entries, self._byte_keys, strict=True)
                if any(all(k in lowered for k in keys) and _byte_word_re(form).search(lowered)
                       for form, keys in forms)]


def _by_length(words: list[AnyStr]) -> tuple[AnyStr, ...]:
    return tuple(sorted(words, key=len, reverse=True))


# A value's words in order, apart from any other word, with only non-word characters between
# them: the same as finding " w1 w2 " in the text's words joined by single spaces.
@lru_cache(maxsize=65536)
def _word_re(norm: str) -> re.Pattern[str]:
    body = r"[\W_]+".join(re.escape(w) for w in norm.split())
    return re.compile(r"(?<![^\W_])" + body + r"(?![^\W_])")


@lru_cache(maxsize=65536)
def _byte_word_re(form: bytes) -> re.Pattern[bytes]:
    body = rb"[^a-z0-9\x80-\xff]+".join(re.escape(w) for w in form.split())
    return re.compile(rb"(?<![a-z0-9\x80-\xff])" + body + rb"(?![a-z0-9\x80-\xff])")


def label(tag: int) -> str:
    """How a residue report names an attribute: ``(0008,0070) Manufacturer``."""
    keyword = keyword_for_tag(tag) or "private or unknown"
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword}"


def _element_texts(ds: Dataset, out: list[tuple[int, str]]) -> None:
    for elem in ds.elements():
        if elem.tag >> 16 == 0x7FE0:
            continue  # pixel data: bytes match short words by chance, and it is large
        if isinstance(elem, RawDataElement) or isinstance(elem.value, bytes):
            data = elem.value or b""
            out.append((elem.tag, data.decode("utf-8", "replace")))
            out.append((elem.tag, data.decode("latin-1")))
        elif elem.VR == "SQ":
            for item in elem.value:
                _element_texts(item, out)
        else:
            out.append((elem.tag, _text_of(elem)))


def _inside_longer_token(folded: str, start: int, end: int) -> bool:
    def word(i: int) -> bool:
        return 0 <= i < len(folded) and folded[i].isalnum()

    return ((start >= 2 and folded[start - 1] in _JOINERS and word(start - 2))
            or (end + 1 < len(folded) and folded[end] in _JOINERS and word(end + 1)))


def waived(tag: int, value: str, source: str, text: str) -> bool:
    """True when ``value`` (read from ``source``) in ``text`` of ``tag`` is no residue by the
    rule of the module's docstring: a vendor-like kind in an equipment attribute, or with every
    occurrence only part of a longer token."""
    if kind_of(source) not in VENDOR_LIKE_KINDS:
        return False
    if tag in EQUIPMENT_TAGS:
        return True
    folded = text.casefold()
    spans = [m.span() for m in _word_re(_words(value)).finditer(folded)]
    return bool(spans) and all(_inside_longer_token(folded, *span) for span in spans)


def _findings(ds: Dataset, matcher: Matcher) -> dict[Residue, bool]:
    """Every (attribute, source) hit in ``ds`` and its file meta, and whether it is waived."""
    texts: list[tuple[int, str]] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _element_texts(meta, texts)
    _element_texts(ds, texts)
    # One search over everything first: a clean output (the usual case) costs one pass.
    if not matcher.in_text("\n".join(text for _, text in texts)):
        return {}
    found: dict[Residue, bool] = {}
    for tag, text in texts:
        for value, src in matcher.in_text(text):
            hit = Residue(label(tag), src)
            # An attribute counts if any of its values or readings counts.
            found[hit] = found.get(hit, True) and waived(tag, value, src, text)
    return found


def scan_dataset(ds: Dataset, matcher: Matcher) -> list[Residue]:
    """Every element (file meta included) holding an identifying value that counts as residue.

    Every value is searched, in nested sequences too; raw (undecoded) and binary values are
    read both as UTF-8 and as Latin-1. Pixel Data is skipped.
    """
    return [hit for hit, ok in _findings(ds, matcher).items() if not ok]


def locate(ds: Dataset, matcher: Matcher, sources: Iterable[str]) -> list[Residue]:
    """The residue behind a byte scan's ``sources`` (found in the encoding of ``ds``): the
    elements that hold them, or :data:`ENCODED` for a source that no element's value holds
    (never cleared for lack of a place: the bytes do hold it)."""
    found = _findings(ds, matcher)
    placed = {hit.source for hit in found}
    return ([hit for hit, ok in found.items() if not ok]
            + [Residue(ENCODED, src) for src in dict.fromkeys(sources) if src not in placed])


def scan_bytes(data: bytes, matcher: Matcher) -> list[str]:
    """The source keyword of each identifying value found in ``data``.

    Pass the encoded header (without Pixel Data: pixel bytes match short words by chance).
    The bytes are searched as they are (ASCII case-insensitive) and read as Latin-1 and as
    UTF-8 with Unicode case folding, so this scan finds whatever :func:`scan_dataset` finds in
    the elements it encodes (it reads raw values the same two ways); :func:`locate` then says
    which elements hold them and applies the rule of what counts.
    """
    if not data:
        return []
    sources = matcher.in_bytes(data)
    if not data.isascii():  # on ASCII bytes the two readings find what in_bytes finds
        for codec in ("latin-1", "utf-8"):
            sources += [src for _, src in matcher.in_text(data.decode(codec, "replace"))]
    return list(dict.fromkeys(sources))


@lru_cache(maxsize=8192)
def scrub_pattern(value: str) -> re.Pattern[str]:
    """The pattern of ``value`` as whole words in a text, case- and punctuation-tolerant."""
    words = _WORD.findall(value)
    body = r"[\W_]+".join(re.escape(w) for w in words)
    return re.compile(r"(?<![^\W_])" + body + r"(?![^\W_])", re.IGNORECASE)


def scrub_text(text: str, matcher: Matcher) -> str:
    """Remove every identifying value from free text (the Clean action on descriptors)."""
    hits = matcher.in_text(text)
    for value, _ in sorted(hits, key=lambda hit: len(hit[0]), reverse=True):
        text = scrub_pattern(value).sub("", text)
    return re.sub(r"\s{2,}", " ", text).strip() if hits else text
