"""The result of de-identifying one data set, and its encoding with the residue scan.

:class:`~bonebase.dicom.deid.Deidentifier` makes a :class:`DeidResult`; its two encoders give
the bytes the object store holds, and scan them for any identifying value read from the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from bonebase.dicom import deid_scan
from bonebase.dicom import deid_values as dv
from bonebase.dicom.encode import encode_head
from bonebase.dicom.stream import PIXEL_DATA
from bonebase.errors import InputError


@dataclass
class DeidResult:
    """Output of :meth:`bonebase.dicom.deid.Deidentifier.deidentify`.

    ``identifiers`` holds identifying values read from the input (for later scans of stored
    objects); it is PHI: keep it in memory only.
    """

    dataset: Dataset
    pseudonym: str
    date_offset_days: int
    identifiers: set[str]
    needs_review: list[str] = field(default_factory=list)
    residue: list[str] = field(default_factory=list)  # "phi_residue: <Residue>" lines
    # What the encoders' scans found, by attribute and kind of value (never the value).
    findings: list[deid_scan.Residue] = field(default_factory=list)
    # Free-text attribute keyword -> "removed" or "cleaned" (counted per attribute by receipts).
    free_text: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict, repr=False)  # value -> keyword
    # The matcher of ``sources`` that de-identification built (the encoders' scans reuse it).
    matcher: deid_scan.Matcher | None = field(default=None, repr=False, compare=False)

    def _matcher(self) -> deid_scan.Matcher:
        if self.matcher is None:
            self.matcher = deid_scan.Matcher(self.sources)
        return self.matcher

    def _scan(self, *parts: bytes) -> None:
        """Scan encoded bytes; name the elements behind any hit (the rare, slower case)."""
        matcher = self._matcher()
        sources = [src for part in parts for src in deid_scan.scan_bytes(part, matcher)]
        if not sources:
            return
        for hit in deid_scan.locate(self.dataset, matcher, sources):
            line = f"phi_residue: {hit}"
            if hit not in self.findings:
                self.findings.append(hit)
            if line not in self.residue:  # the data set scan may have named it already
                self.residue.append(line)

    def to_bytes(self) -> bytes:
        """Encode the data set as a DICOM file and scan the encoded header for residue.

        Hits are appended to ``residue`` and ``findings``; the bytes are what the object store should hold.
        """
        buf = BytesIO()
        self.dataset.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
        self._scan(data[: dv.pixel_data_offset(data)])
        return data

    def encode_whole(self) -> bytes:
        """:meth:`to_bytes` (the same bytes, the same scan) for a data set holding native
        little-endian Pixel Data (the burned-in text step's redacted pixels): the elements
        around it through :meth:`encode_parts`' fast encoder, the element as pydicom writes it.
        Any other data set goes to :meth:`to_bytes`."""
        ds = self.dataset
        elem = ds.get(PIXEL_DATA)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if (elem is None or elem.is_undefined_length or not isinstance(elem.value, bytes)
                or elem.VR not in ("OB", "OW") or len(elem.value) % 2
                or syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
                or ds.original_encoding != (syntax.is_implicit_VR, True)):
            return self.to_bytes()
        del ds[PIXEL_DATA]
        try:
            head, tail = self.encode_parts()
        finally:
            ds[PIXEL_DATA] = elem
        pixels = DicomBytesIO()
        pixels.is_implicit_VR, pixels.is_little_endian = syntax.is_implicit_VR, True
        write_data_element(pixels, elem)
        return b"".join((head, pixels.getvalue(), tail))

    def encode_parts(self) -> tuple[bytes, bytes]:
        """Encode the elements before and after Pixel Data (which the data set must not hold)
        and scan both for residue; the caller writes Pixel Data between them.

        Together with the source's Pixel Data element these are the bytes of :meth:`to_bytes`.
        """
        elements = dict(self.dataset.items())
        tail = {tag: elem for tag, elem in elements.items() if tag > PIXEL_DATA}
        if PIXEL_DATA in elements:
            raise InputError("encode_parts needs a data set without Pixel Data; use to_bytes")
        head = encode_head(self.dataset)  # the fast path; None: pydicom writes it
        if head is None:
            head_ds = self.dataset
            if tail:
                head_ds = Dataset({t: e for t, e in elements.items() if t < PIXEL_DATA})
                head_ds.file_meta = self.dataset.file_meta
                head_ds.set_original_encoding(*dv.encoding_of(self.dataset))
            buf = BytesIO()
            head_ds.save_as(buf, enforce_file_format=True)
            head = buf.getvalue()
        trailing = b""
        if tail:
            out = DicomBytesIO()
            out.is_implicit_VR, out.is_little_endian = self.dataset.original_encoding
            write_dataset(out, Dataset(tail), self.dataset.original_character_set or "iso8859")
            trailing = out.getvalue()
        self._scan(head, trailing)
        return head, trailing
