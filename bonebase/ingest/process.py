"""One pass over each submitted file: read, fingerprint, QC, de-identify, stage.

Each file is read once. Its header row (with the site's own PatientID and accession, needed to
match the manifest) stays in memory; the de-identified bytes are written to a staging folder under
their content hash, and only moved into the object store once validation has accepted them (for
a local store the staging folder lies inside it, so the move is a rename, not a copy).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bonebase.dicom import burned_in as burned_in_step
from bonebase.dicom import deid_scan, raster
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_result import DeidResult
from bonebase.dicom.read import DicomReadError, header_record, peek
from bonebase.dicom.stream import DicomParts, open_parts, qc_sample
from bonebase.errors import InputError
from bonebase.ingest import limits
from bonebase.ingest.limits import refusal_message
from bonebase.ingest.pixel_text import FullSizeNeeded as FullSizeNeeded  # process_raster's
from bonebase.ingest.pixel_text import burned_in_text
from bonebase.ingest.scan import FileEntry
from bonebase.storage import TMP_PREFIX

_SERIAL = itertools.count()
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
    out_size: int | None = None  # of the de-identified bytes
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


def process_file(entry: FileEntry, *, deid: Deidentifier, site: str, staging: Path,
                 max_pixels: int | None = None, burned_in: str | None = "redact") -> FileResult:
    """Read, QC and de-identify one file; failures become a reason code, never an exception.

    The header is parsed and de-identified; Pixel Data is copied from the source into the staged
    output in chunks (never held whole), hashed on the way. A file refused at scan (a link, a
    refused zip entry, an oversized file) is not opened. ``max_pixels`` defaults to
    BONEBASE_MAX_PIXELS. Whatever a file holds, it costs at most one quarantine item: only
    failures to write the staging folder (this machine's fault, retried) are raised.

    ``burned_in`` is the site's policy for identifying text burned into the pixels of the
    images where it is likely (:mod:`bonebase.dicom.burned_in`): "redact" (black boxes) or
    "quarantine" (held with reason burned_in_text); None skips the step (benchmarks only).
    """
    from validation.image_qc import qc_metrics

    result = FileResult(entry.rel, entry.sha256, entry.size)
    if entry.refused is not None:
        result.reason = entry.refused
        result.message = refusal_message(entry.rel, entry.refused, entry.size)
        return result
    if max_pixels is None:
        max_pixels = limits.current().max_pixels
    try:
        parts = open_parts(entry.path, entry.rel, max_pixels=max_pixels)
    except DicomReadError as exc:
        kind = raster.sniff(raster.head(entry.path)) if exc.reason == "non_dicom" else None
        if kind is not None:  # a JPEG or PNG: wrapped as DICOM from its manifest row
            from bonebase.ingest.process_raster import process_raster

            return process_raster(entry, kind, result, deid=deid, site=site, staging=staging,
                                  max_pixels=max_pixels, burned_in=burned_in)
        if exc.reason == "non_dicom" and entry.listing and entry.rel.lower().endswith(".json"):
            result.reason = "unlisted_annotation"
            result.message = (f"{entry.rel}: a JSON file that no manifest row names in its "
                              "annotation_file column; name it beside its image (docs/manifest.md,"
                              " 'JPEG and PNG images') or remove it from the submission")
            return result
        result.reason, result.message = exc.reason, str(exc).replace(str(entry.path), entry.rel)
        return result
    except FileNotFoundError:
        result.reason = "missing_file"
        result.message = f"{entry.rel}: the file disappeared during ingestion; send it again"
        return result
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # this machine's fault (permissions, I/O): raised, retried
            raise
        # Swapped for a link after the submission was scanned: refused by O_NOFOLLOW, unread.
        result.reason = limits.SYMBOLIC_LINK
        result.message = refusal_message(entry.rel, limits.SYMBOLIC_LINK, 0)
        return result
    except Exception as exc:  # noqa: BLE001 - whatever pydicom raises on a hostile file
        return _failed(result, exc)
    with parts:
        try:
            staged = deidentify_parts(parts, result, deid=deid, site=site,
                                     qc_metrics=qc_metrics, burned_in=burned_in)
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError included
            return _failed(result, exc)
        if staged is not None:
            # Nothing is written for a file held for review: its original is what quarantine keeps.
            redacted = bool((result.extra.get("burned_in") or {}).get("redacted"))
            result.staged, result.sha256, result.out_size = _stage(parts, *staged, staging,
                                                                   pixels=not redacted)
    return result


def _failed(result: FileResult, exc: BaseException) -> FileResult:
    """The quarantine reason of a file whose reading or de-identification raised; the message
    names the exception's type only (its text may quote the file's contents)."""
    result.record = None
    if isinstance(exc, RecursionError):
        result.reason = limits.TOO_DEEPLY_NESTED
        result.message = (f"{result.rel}: the DICOM header nests sequences too deeply to be "
                          "processed; export the image again from the PACS and resubmit")
    else:
        result.reason = "corrupt_file"
        result.message = (f"{result.rel}: the DICOM file cannot be processed "
                          f"({exc.__class__.__name__}); export the image again from the PACS "
                          "and resubmit")
    return result


def deidentify_parts(parts: DicomParts, result: FileResult, *, deid: Deidentifier, site: str,
                     qc_metrics=None, burned_in: str | None = "redact", wrapped: bool = False,
                     amend: Callable[[DeidResult], None] | None = None, frame_step: int = 1
                     ) -> tuple[bytes, bytes] | None:
    """De-identify one opened file: fill ``result`` from the header; the encoded header and
    trailer to stage, or None (``result.reason`` says why it is held).

    When the pixels were redacted the header holds the new Pixel Data and the trailer is
    empty (``result.extra["burned_in"]`` says so); otherwise the source's Pixel Data goes
    between them. ``qc_metrics`` None skips the radiograph QC (the hospital gateway);
    ``wrapped`` marks a JPEG/PNG this platform wrapped as Secondary Capture (not held as a
    screen capture); ``amend(out)`` changes the de-identified data set after the burned-in
    text step, before it is encoded and scanned (the gateway's accession pseudonym and mark).
    ``frame_step`` > 1: ``parts.first_frame`` is the image at 1/frame_step of its size (raises
    FullSizeNeeded when OCR would read it). Central ingest and the gateway run it."""
    ds, rel = parts.dataset, result.rel
    record = header_record(ds, file=rel)
    if record["modality"] in XRAY and qc_metrics is not None:
        try:
            sample, aspect = qc_sample(parts)
            record.update(qc_metrics(sample, bits_stored=record["bits_stored"]))
            record["aspect_ratio"] = aspect  # of the image, not of the sample
        except DicomReadError as exc:  # refused before decoding (a lying codestream)
            result.reason, result.message = exc.reason, str(exc)
            return None
        except Exception as exc:  # undecodable pixels are a corrupt file, not a crash
            result.reason = "corrupt_file"
            result.message = (f"{rel}: pixel data cannot be decoded ({exc.__class__.__name__});"
                              " export the image again from the PACS and resubmit")
            return None
    try:
        # The data set scan is left to encode_parts/to_bytes, which scan the encoded bytes.
        out = deid.deidentify(ds, site=site, scan=False)
    except InputError as exc:
        result.reason, result.message = "deidentification_failed", f"{rel}: {exc}"
        return None
    if wrapped and "secondary_capture" in out.needs_review:
        # Our own wrapping of a JPEG/PNG export, not a screen capture sent in place of the
        # original: its burned-in text is read below like any radiograph's.
        out.needs_review.remove("secondary_capture")
    text = None
    if burned_in is not None and burned_in_step.candidate(ds):
        text = burned_in_text(parts, out, result, policy=burned_in, frame_step=frame_step)
        if result.reason is not None:
            return None
    if amend is not None:
        amend(out)
    if text is not None and text.redacted:  # the redacted pixels are in the data set
        head, tail = out.encode_whole(), b""  # scanned for residue as well
    elif parts.pixels is None:  # Pixel Data in the data set (deflated files)
        head, tail = out.to_bytes(), b""  # to_bytes scans the encoded header for residue
    else:
        head, tail = out.encode_parts()  # scanned for residue as well
    if out.residue:
        result.reason = "phi_residue"
        # Attribute and kind of value only: the message is stored, logged and shown.
        result.message = (f"{rel}: identifying values remain after de-identification: "
                          f"{deid_scan.summary(out.findings)}; held for review by a data steward")
    elif out.needs_review:
        result.reason = reason = out.needs_review[0]
        if reason.startswith("unparseable_date:"):
            keyword = reason.split(":", 1)[1]
            result.message = (f"{rel}: the date in {keyword} cannot be read, so it cannot be "
                              "shifted with the patient's other dates; held for review by a data "
                              "steward (fix the date in the PACS export)")
        else:
            result.message = (f"{rel}: {reason.replace('_', ' ')}: the image may show"
                              " identifying text; held for review by a data steward")
    record["patient_identity_removed"] = str(peek(out.dataset, "PatientIdentityRemoved", ""))
    result.record = record
    result.pseudonym = out.pseudonym
    result.identifiers = out.identifiers
    result.study_uid = str(peek(out.dataset, "StudyInstanceUID", ""))
    result.series_uid = str(peek(out.dataset, "SeriesInstanceUID", ""))
    result.sop_instance_uid = str(peek(out.dataset, "SOPInstanceUID", ""))
    result.study_date = _da(peek(out.dataset, "StudyDate"))
    result.extra = {
        "sop_class_uid": _text(peek(out.dataset, "SOPClassUID")),
        "study_description": _text(peek(out.dataset, "StudyDescription")),
        "series_description": _text(peek(out.dataset, "SeriesDescription")),
        "body_part": _text(peek(out.dataset, "BodyPartExamined")),
        # Free-text attribute -> "removed" or "cleaned" (names only: for the receipt's counts).
        "free_text": dict(out.free_text),
        # What the burned-in text step did (counts and kinds only, never the text).
        "burned_in": text.summary() if text is not None else None,
        "instance_number": record.get("instance_number") or _int(peek(out.dataset, "InstanceNumber")),
    }
    return (head, tail) if result.reason is None else None


def _stage(parts: DicomParts, head: bytes, tail: bytes, staging: Path, *,
           pixels: bool = True) -> tuple[Path, str, int]:
    """Write header, Pixel Data and trailer to ``staging/<sha256>.dcm``, hashing on the way
    (``pixels`` False: the header holds the Pixel Data already)."""
    digest = hashlib.sha256()
    # Unique per process and file (mkstemp's random names cost more than the write here).
    tmp = staging / f"{TMP_PREFIX}{os.getpid()}-{next(_SERIAL)}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(head)
            digest.update(head)
            size = len(head) + (parts.copy_pixels(fh, digest) if pixels else 0)
            fh.write(tail)
            digest.update(tail)
            size += len(tail)
        sha = digest.hexdigest()
        staged = staging / f"{sha}.dcm"
        tmp.replace(staged)  # atomic: a concurrent worker writing the same content is harmless
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return staged, sha, size


def _text(value: object) -> str | None:
    """A header string for a column: None when absent or emptied (str(None) is 'None')."""
    return (str(value).strip() or None) if value is not None else None


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def process_batch(entries: list[FileEntry], *, secret: bytes, uid_root: str, site: str,
                  staging: Path, max_pixels: int | None = None,
                  keep_descriptors: bool = False, burned_in: str = "redact") -> list[FileResult]:
    """Process a batch of files (one task's worth: hundreds of files).

    ``keep_descriptors`` is the site's choice to keep free-text descriptors cleaned by the
    detector (:mod:`bonebase.dicom.free_text`) instead of removing them (the default);
    ``burned_in`` the site's policy for identifying text in the pixels ("redact" or
    "quarantine")."""
    deid = Deidentifier(secret, uid_root=uid_root, keep_descriptors=keep_descriptors)
    staging.mkdir(parents=True, exist_ok=True)
    if max_pixels is None:
        max_pixels = limits.current().max_pixels
    return [process_file(e, deid=deid, site=site, staging=staging, max_pixels=max_pixels,
                         burned_in=burned_in) for e in entries]
