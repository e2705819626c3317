"""De-identification of DICOM data sets per DICOM PS3.15 Annex E.

Profile: Basic Application Level Confidentiality Profile with the options Retain Patient
Characteristics and Retain Longitudinal Temporal Information with Modified Dates (actions from
Table E.1-1, see :mod:`bonebase.dicom.deid_table`). Descriptions, comments, histories and other
free text are removed, as the Basic Profile does; a site that keeps descriptors
(``keep_descriptors``) gets the Clean Descriptors option instead, where what is kept is what
the detector of identifying text (:mod:`bonebase.dicom.free_text`) leaves.

Pseudonyms, UID remapping and date offsets are keyed by the consortium secret
(:mod:`bonebase.dicom.deid_keys`). The same input always gives the same output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from bonebase.dicom import deid_mark, deid_scan, free_text
from bonebase.dicom import deid_values as dv
from bonebase.dicom.deid_keys import Keys
from bonebase.dicom.deid_result import DeidResult
from bonebase.dicom.deid_table import TABLE_EDITIONS, action_table, descriptor_tags
from bonebase.dicom.read import peek
from bonebase.errors import InputError

# Deidentification Method is LO (64 characters a value), so the text is one value per part.
METHOD_TEXT = (
    "DICOM PS3.15 Basic Application Level Confidentiality Profile",
    "Retain Patient Characteristics Option",
    "Retain Longitudinal Temporal Information Modified Dates Option",
    f"bonebase; {TABLE_EDITIONS}"[:64],
)
CLEAN_DESCRIPTORS_TEXT = "Clean Descriptors Option"
# CID 7050 De-identification Method codes, scheme DCM.
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113108", "Retain Patient Characteristics Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
CLEAN_DESCRIPTORS_CODE = ("113105", "Clean Descriptors Option")
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # SC Image Storage and its multi-frame kin
DICOM_UID_PREFIX = "1.2.840.10008."  # UIDs defined by the standard (SOP classes, syntaxes)
_META_KEPT = (0x00020001, 0x00020002, 0x00020010)
_PATIENT_ID = 0x00100020
_PATIENT_NAME = 0x00100010
_SOP_INSTANCE_UID = 0x00080018
_OVERLAY_GROUPS = range(0x6000, 0x6100)  # the table removes overlay data; we drop whole planes
_CODE_VALUE, _SCHEME, _MEANING = 0x00080100, 0x00080102, 0x00080104
# Attributes Table E.1-1 does not list: kept, except dates (shifted), UIDs (remapped unless
# defined by the standard) and person names (replaced), which are never safe to keep.
_UNLISTED = {"DA": "C", "DT": "C", "UI": "U", "PN": "D", "SQ": "K"}


@dataclass
class _Walk:
    """State of one de-identification: what was seen and what must be done after the walk."""

    pseudonym: str
    offset: dt.timedelta
    identifiers: dict[str, str] = field(default_factory=dict)  # value -> keyword it came from
    to_clean: list[DataElement] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)
    # Free-text attribute keyword -> "removed" or "cleaned" (what the receipt counts).
    free_text: dict[str, str] = field(default_factory=dict)
    codec: str | None = None  # Python codec of the data set's character set, when simple
    keep_uids: bool = False  # a gateway's file: its UIDs are remapped already
    encoding: tuple[bool, bool] | None = None  # (implicit VR, little endian): new values
    # are encoded at once (dv.raw_element) when the data set has a known encoding


class Deidentifier(Keys):
    """Apply bonebase's PS3.15 profile with keyed, deterministic pseudonyms, UIDs and dates."""

    def __init__(
        self,
        secret: bytes,
        *,
        uid_root: str = "2.25",
        retain_private: frozenset[tuple[str, int]] = frozenset(),
        encode_values: bool = True,
        keep_descriptors: bool = False,
    ) -> None:
        """``retain_private`` holds (private creator, element byte) pairs known to be safe.

        ``encode_values`` False builds every new value as a pydicom DataElement (the reference
        path the tests compare the encoded one with); True encodes the new values it can at once
        (ASCII text, UIDs, dates, integers: dv.raw_value), so that writing them is a copy.

        ``keep_descriptors`` (a site's choice, default off) keeps descriptions, comments and
        histories cleaned by the detector of identifying text instead of removing them."""
        super().__init__(secret, uid_root=uid_root)
        self._retain_private = retain_private
        self._table = action_table(keep_descriptors)
        self.keep_descriptors = keep_descriptors
        self._descriptors = descriptor_tags()
        self._encode_values = encode_values

    def deidentify(self, ds: Dataset, *, site: str, patient_id: str | None = None,
                   scan: bool = True) -> DeidResult:
        """Return a de-identified copy of ``ds``; the input is not changed.

        ``patient_id`` overrides the data set's PatientID (e.g. from the site's manifest).
        ``scan`` False skips the scan of the output data set for residue, for callers that
        scan the encoded bytes instead (:meth:`DeidResult.encode_parts` does).
        """
        pid = patient_id if patient_id is not None else str(peek(ds, "PatientID", "") or "")
        if not pid.strip():
            uid = peek(ds, "SOPInstanceUID", "unknown SOP Instance UID")
            raise InputError(
                f"{uid}: PatientID (0010,0020) is empty; the site must fill PatientID or give "
                "patient_id in the manifest, then resubmit"
            )
        pid = pid.strip()
        # A file a hospital's gateway de-identified with this key: the profile runs again (what
        # it removes stays removed), but its pseudonym, dates and UIDs are kept as they are.
        marked = self._gateway_marked(ds, site, pid)
        walk = _Walk(
            pseudonym=self.pseudonym(site, pid),
            offset=dt.timedelta(days=0 if marked else self.date_offset(site, pid)),
            codec=dv.CODECS.get(str(peek(ds, "SpecificCharacterSet", "") or "")),
            keep_uids=marked,
        )
        implicit, little = ds.original_encoding
        if self._encode_values and implicit is not None and little is not None:
            walk.encoding = (implicit, little)
        walk.identifiers[pid] = "PatientID"
        elements = self._walk(ds, walk, top=True)
        # The site code (often sent as IssuerOfPatientID) is not identifying: it is stored openly
        # and is part of every pseudonym, so scanning for it would flag every output. Nor is a
        # marked file's pseudonym, which it keeps.
        identifiers = {v: k for v, k in walk.identifiers.items()
                       if deid_scan.usable(v) and v.strip().casefold() != site.casefold()
                       and not (marked and v.strip() == walk.pseudonym)}
        matcher = deid_scan.Matcher(identifiers)
        self._clean_deferred(walk, matcher)
        out = self._finish(ds, elements, walk)
        residue = deid_scan.scan_dataset(out, matcher) if scan else []
        return DeidResult(
            dataset=out,
            pseudonym=walk.pseudonym,
            date_offset_days=walk.offset.days,
            identifiers=set(identifiers),
            needs_review=walk.needs_review,
            residue=[f"phi_residue: {hit}" for hit in residue],
            findings=list(residue),
            free_text=walk.free_text,
            sources=identifiers,
            matcher=matcher,
        )

    def _gateway_marked(self, ds: Dataset, site: str, pid: str) -> bool:
        if not self.is_pseudonym(site, pid):
            return False
        methods = peek(ds, "DeidentificationMethod", None)
        if methods is None:
            return False
        methods = [methods] if isinstance(methods, str) else list(methods)
        return deid_mark.is_marked(self._secret, site, pid,
                                   str(peek(ds, "SOPInstanceUID", "") or ""), methods)

    # -- the walk -------------------------------------------------------------------------

    def _walk(self, src: Dataset, walk: _Walk, *, top: bool = False) -> Dataset:
        # The output is built as a plain dict and wrapped once: Dataset.__setitem__ per
        # element costs more than the de-identification itself on small files.
        out: dict[BaseTag, DataElement | RawDataElement] = {}
        for raw in src.elements():
            tag = raw.tag
            if tag.is_private:
                if self._retain_private and self._private_kept(src, tag):
                    out[tag] = raw
                continue
            number = int(tag)  # lookups and tests on a plain int: Tag compares in Python
            if number & 0xFFFF == 0 or (number >> 16) in _OVERLAY_GROUPS:
                continue  # group lengths are recomputed on write
            action = self._table.action(number)
            vr = raw.VR if raw.VR else dv.vr_of(tag)
            if number in deid_scan.IDENTIFYING_TAGS or vr == "PN":
                self._collect(dv.decoded(src, raw, vr, walk.codec), walk)
            if action is None:  # not in Table E.1-1: kept, with dates, UIDs and names handled
                action = _UNLISTED.get(vr, "K")
            if action == "X" or number == _PATIENT_ID or number == _PATIENT_NAME:  # in _finish
                if number in self._descriptors and raw.value:
                    walk.free_text[elem_keyword(tag)] = "removed"
                continue
            if action == "K" and vr != "SQ" and isinstance(raw, RawDataElement):
                out[tag] = raw  # immutable raw element: no need to decode or copy
                continue
            if action == "Z" and vr != "SQ":
                if number in self._descriptors and raw.value:
                    walk.free_text[elem_keyword(tag)] = "removed"
                out[tag] = self._new(tag, vr, None, walk)
                continue
            elem = dv.decoded(src, raw, vr, walk.codec)
            if vr == "SQ":
                out[tag] = self._sequence(elem, action, walk)
            elif action == "U" or (elem.VR == "UI" and action in ("D", "C")):
                out[tag] = self._new(tag, elem.VR, self._uids(elem.value, walk), walk)
            elif action == "D":
                out[tag] = dv.element(tag, elem.VR, dv.dummy(elem))
            elif action == "C":
                out[tag] = self._clean(elem, walk)
            else:  # K on an element already converted (e.g. a data set built in memory)
                value = elem.value
                if dv.is_multi(value):
                    value = MultiValue(type(value[0]), value)
                out[tag] = self._new(tag, elem.VR, value, walk)
        if top:
            return out  # type: ignore[return-value]  # completed by _finish
        # An item keeps its parent's character set, as when pydicom reads it from a file, so
        # that writers encode its raw elements as they are.
        result = Dataset(out, parent_encoding=src._character_set)
        result.set_original_encoding(*dv.encoding_of(src))
        return result

    def _sequence(self, elem: DataElement, action: str, walk: _Walk) -> DataElement:
        if action == "Z":
            return dv.element(elem.tag, "SQ", Sequence())
        # K, C, U, D: the items are walked with the same table (PS3.15 E.1.1 applies the
        # profile to attributes nested in sequences as well).
        return dv.element(elem.tag, "SQ", Sequence([self._walk(i, walk) for i in elem.value]))

    def _private_kept(self, src: Dataset, tag: Tag) -> bool:
        if tag.element < 0x1000:  # a private creator: kept if any block of it is retained
            creator = str(src[tag].value).strip()
            return any(c == creator for c, _ in self._retain_private)
        creator_tag = Tag(tag.group, tag.element >> 8)
        if creator_tag not in src:
            return False
        creator = str(src[creator_tag].value).strip()
        return (creator, tag.element & 0xFF) in self._retain_private

    def _collect(self, elem: DataElement, walk: _Walk) -> None:
        source = elem.keyword or str(elem.tag)
        vendor_like = deid_scan.kind_of(source) in deid_scan.VENDOR_LIKE_KINDS
        for value in deid_scan.values_of(elem.value):
            # A value seen in two attributes keeps the stricter source: the residue rule clears
            # institution and station names inside equipment names, never a person's name.
            known = walk.identifiers.get(value)
            if known is None or (not vendor_like
                                 and deid_scan.kind_of(known) in deid_scan.VENDOR_LIKE_KINDS):
                walk.identifiers[value] = source

    def _uids(self, value: object, walk: _Walk) -> object:
        def one(uid: str) -> str:
            if not uid or uid.startswith(DICOM_UID_PREFIX) or walk.keep_uids:
                return uid
            if len(uid) >= 10:  # an original UID surviving anywhere links back to the source
                walk.identifiers.setdefault(uid, "UID")
            return self.remap_uid(uid)

        if dv.is_multi(value):
            return MultiValue(str, [one(str(v)) for v in value])
        return None if value is None else one(str(value))

    def _clean(self, elem: DataElement, walk: _Walk) -> DataElement:
        if elem.VR in ("DA", "DT"):
            return self._new(elem.tag, elem.VR, self._shift(elem, walk), walk)
        if elem.VR not in dv.TEXT_VRS:  # TM, numbers: kept as they are
            return self._new(elem.tag, elem.VR, elem.value, walk)
        new = dv.element(elem.tag, elem.VR, elem.value)
        walk.to_clean.append(new)  # scrubbed after the walk, when all identifiers are known
        return new

    @staticmethod
    def _new(tag: int, vr: str, value: object, walk: _Walk) -> DataElement | RawDataElement:
        """The output element: encoded at once where the walk knows how (ASCII text, integers;
        see dv.raw_value) in a data set of known encoding, else a DataElement for pydicom."""
        if walk.encoding is not None:
            data = dv.raw_value(vr, value, walk.encoding[1])
            if data is not None:
                return dv.raw_element(tag, vr, data, implicit=walk.encoding[0],
                                      little=walk.encoding[1])
        return dv.element(tag, vr, value)

    def _shift(self, elem: DataElement, walk: _Walk) -> object:
        values = list(elem.value) if dv.is_multi(elem.value) else [elem.value]
        shifted = []
        for value in values:
            text = "" if value is None else str(value).strip()
            if not text:
                shifted.append(text)
                continue
            new = dv.shift_value(text, walk.offset, dt_vr=elem.VR == "DT")
            if new is None:  # unparseable dates could hold anything: drop and flag them
                walk.needs_review.append(f"unparseable_date:{elem.keyword or elem.tag}")
                new = ""
            shifted.append(new)
        return MultiValue(str, shifted) if len(shifted) > 1 else shifted[0] or None

    def _clean_deferred(self, walk: _Walk, matcher: deid_scan.Matcher) -> None:
        """Clean kept free text with the detector (the file's own values, names, numbers...)."""
        for elem in walk.to_clean:
            values = list(elem.value) if dv.is_multi(elem.value) else [elem.value]
            cleaned = [free_text.clean(str(v), matcher) if v is not None else (v, [])
                       for v in values]
            if any(kinds for _, kinds in cleaned):
                walk.free_text[elem.keyword or str(elem.tag)] = "cleaned"
            if dv.is_multi(elem.value):
                elem.value = [text for text, _ in cleaned]
            elif elem.value is not None:
                elem.value = cleaned[0][0] or None

    def _finish(self, src: Dataset, elements: dict, walk: _Walk) -> Dataset:
        new = self._new
        codes = []
        method_codes, method_text = list(METHOD_CODES), list(METHOD_TEXT)
        if self.keep_descriptors:
            method_codes.append(CLEAN_DESCRIPTORS_CODE)
            method_text.insert(-1, CLEAN_DESCRIPTORS_TEXT)
        for code, meaning in method_codes:
            item = Dataset(
                {e.tag: e for e in (new(_CODE_VALUE, "SH", code, walk),
                                    new(_SCHEME, "SH", "DCM", walk),
                                    new(_MEANING, "LO", meaning, walk))},
                parent_encoding=src._character_set,
            )
            if walk.encoding is not None:  # as an item read from a file: its parent's encoding
                item.set_original_encoding(*walk.encoding, src._character_set)
            codes.append(item)
        for elem in (
            new(_PATIENT_ID, "LO", walk.pseudonym, walk),
            new(_PATIENT_NAME, "PN", walk.pseudonym, walk),
            new(0x00120062, "CS", "YES", walk),  # Patient Identity Removed
            new(0x00120063, "LO", method_text, walk),  # De-identification Method
            dv.element(0x00120064, "SQ", Sequence(codes)),  # ... Code Sequence (CID 7050)
            new(0x00280303, "CS", "MODIFIED", walk),  # Longitudinal Temporal Info. Modified
        ):
            elements[elem.tag] = elem
        out = Dataset(elements)
        out.set_original_encoding(*dv.encoding_of(src))
        if str(peek(src, "BurnedInAnnotation", "")).upper() == "YES":
            walk.needs_review.append("burned_in_annotation")
        if str(peek(src, "SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX):
            walk.needs_review.append("secondary_capture")
        meta = getattr(src, "file_meta", None)
        if meta is not None:
            new_meta = [dv.element(t, meta[t].VR, meta[t].value) for t in _META_KEPT if t in meta]
            if _SOP_INSTANCE_UID in elements:
                new_meta.append(dv.element(0x00020003, "UI", out.SOPInstanceUID))
            new_meta.append(dv.element(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID))
            new_meta.append(dv.element(0x00020013, "SH", "BONEBASE"))
            out.file_meta = FileMetaDataset(dv.dataset(*new_meta))
        return out


def elem_keyword(tag: BaseTag) -> str:
    """An attribute's keyword, or its tag when the dictionary does not know it."""
    return keyword_for_tag(tag) or str(tag)


__all__ = ["DeidResult", "Deidentifier"]
