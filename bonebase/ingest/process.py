"""One pass over each submitted file: read, fingerprint, QC, de-identify, stage.

Each file is read once. Its header row (with the site's own PatientID and accession, needed to
match the manifest) stays in memory; the de-identified bytes are written to a staging folder under
their content hash, and only moved into the object store once validation has accepted them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.read import DicomReadError, header_record, read_full
from bonebase.errors import InputError
from bonebase.ingest.scan import FileEntry

# Modalities whose pixels we QC for blank/saturated images (radiographs).
XRAY = frozenset({"CR", "DX"})


@dataclass
class FileResult:
    rel: str
    source_sha256: str
    size: int
    record: dict | None = None  # header row for validation (holds the site's identifiers: memory only)
    reason: str | None = None  # quarantine reason when the file could not be processed
    message: str | None = None
    sha256: str | None = None  # of the de-identified bytes
    staged: Path | None = None
    pseudonym: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    study_date: date | None = None
    extra: dict = field(default_factory=dict)
    identifiers: set[str] = field(default_factory=set)  # PHI read from the input: memory only


def _da(value: object) -> date | None:
    text = str(value or "")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None
    except ValueError:
        return None




def process_file(entry: FileEntry, *, deid: Deidentifier, site: str, staging: Path) -> FileResult:
    """Read, QC and de-identify one file; failures become a reason code, never an exception."""
    from validation.image_qc import qc_metrics

    result = FileResult(entry.rel, entry.sha256, entry.size)
    try:
        ds = read_full(entry.path)
    except DicomReadError as exc:
        result.reason, result.message = exc.reason, str(exc).replace(str(entry.path), entry.rel)
        return result
    except FileNotFoundError:
        result.reason = "missing_file"
        result.message = f"{entry.rel}: the file disappeared during ingestion; send it again"
        return result
    record = header_record(ds, file=entry.rel)
    if record["modality"] in XRAY:
        try:
            record.update(qc_metrics(ds.pixel_array, bits_stored=record["bits_stored"]))
        except Exception as exc:  # undecodable pixels are a corrupt file, not a crash
            result.reason = "corrupt_file"
            result.message = (f"{entry.rel}: pixel data cannot be decoded ({exc.__class__.__name__});"
                              " export the image again from the PACS and resubmit")
            return result
    try:
        out = deid.deidentify(ds, site=site)
    except InputError as exc:
        result.reason, result.message = "deidentification_failed", f"{entry.rel}: {exc}"
        return result
    data = out.to_bytes()  # also scans the encoded header for identifying values
    if out.residue:
        result.reason = "phi_residue"
        result.message = (f"{entry.rel}: identifying values remain after de-identification "
                          f"({len(out.residue)} hits); held for review by a data steward")
    elif out.needs_review:
        result.reason = out.needs_review[0]
        result.message = (f"{entry.rel}: {out.needs_review[0].replace('_', ' ')}: the image may show"
                          " identifying text; held for review by a data steward")
    record["patient_identity_removed"] = str(out.dataset.get("PatientIdentityRemoved", ""))
    result.record = record
    result.sha256 = hashlib.sha256(data).hexdigest()
    result.pseudonym = out.pseudonym
    result.identifiers = out.identifiers
    result.study_uid = str(out.dataset.get("StudyInstanceUID", ""))
    result.series_uid = str(out.dataset.get("SeriesInstanceUID", ""))
    result.sop_instance_uid = str(out.dataset.get("SOPInstanceUID", ""))
    result.study_date = _da(out.dataset.get("StudyDate"))
    result.extra = {
        "sop_class_uid": str(out.dataset.get("SOPClassUID", "")) or None,
        "study_description": str(out.dataset.get("StudyDescription", "")) or None,
        "series_description": str(out.dataset.get("SeriesDescription", "")) or None,
        "body_part": str(out.dataset.get("BodyPartExamined", "")) or None,
        "instance_number": record.get("instance_number") or _int(out.dataset.get("InstanceNumber")),
    }
    if result.reason is None:
        staged = staging / f"{result.sha256}.dcm"
        if not staged.exists():
            tmp = staged.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(staged)
        result.staged = staged
    return result


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def process_batch(entries: list[FileEntry], *, secret: bytes, uid_root: str, site: str,
                  staging: Path) -> list[FileResult]:
    """Process a batch of files (one task's worth: hundreds of files)."""
    deid = Deidentifier(secret, uid_root=uid_root)
    staging.mkdir(parents=True, exist_ok=True)
    return [process_file(e, deid=deid, site=site, staging=staging) for e in entries]
