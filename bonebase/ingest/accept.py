"""Decide what happens to every row and file of a submission, then store it.

Inputs: the manifest frame, the per-file results of :mod:`bonebase.ingest.process` and the
validation report. Every row and every file ends in exactly one of: accepted (stored as part of a
case), duplicate (already stored by an earlier submission), or quarantined with a reason code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from bonebase import vocab
from bonebase.db.cases import CaseRecord, InstanceRecord
from bonebase.db.quarantine import QuarantineItem
from bonebase.dicom.deid import Deidentifier
from bonebase.ingest import match
from bonebase.ingest.process import FileResult
from bonebase.ingest.redact import Redactor


@dataclass
class CasePlan:
    row: int
    case_ref: str  # the case pseudonym: a site's case_id is often the patient's record number
    record: CaseRecord
    files: list[FileResult]


@dataclass
class Plan:
    cases: list[CasePlan] = field(default_factory=list)
    quarantine: list[tuple[QuarantineItem, FileResult | None]] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # submission-level findings
    scrub: Redactor | None = None
    matching: match.Matching | None = None
    # Lesion shapes of accepted images (annotation_file), by the stored file's sha256.
    annotations: dict[str, list] = field(default_factory=dict)

    def redact(self, text: str | None) -> str | None:
        """Text safe to store: this submission's identifying values replaced by [redacted].

        Paths need it too: sites often name folders by PatientID or accession number.
        """
        if text is None or not self.scrub:
            return text
        return self.scrub.redact(text)

    clean = redact


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def case_record(row: dict, *, site: str, deid: Deidentifier) -> CaseRecord:
    """The stored, pseudonymous form of a manifest row."""
    diagnosis = vocab.lookup_diagnosis(_text(row.get("diagnosis")))
    location = vocab.lookup_location(_text(row.get("location")))
    age = _text(row.get("age"))
    confirmed = _text(row.get("pathology_confirmed")).lower()
    fields = {
        "age": int(float(age)) if re.fullmatch(r"\d+(\.0+)?", age) else None,
        "sex": _text(row.get("sex")).upper() or None,
        "location_code": location.code if location else None,
        "diagnosis_code": diagnosis.code if diagnosis else None,
        "behaviour": diagnosis.behaviour.value if diagnosis else None,
        "modalities": ";".join(sorted({m.strip().upper() for m in
                                        _text(row.get("modalities")).split(";") if m.strip()})),
        "pathology_confirmed": {"yes": True, "no": False}.get(confirmed),
    }
    row_hash = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return CaseRecord(
        case_pseudonym=_case_pseudonym(_text(row.get("case_id")), site=site, deid=deid),
        patient_pseudonym=deid.pseudonym(site, _text(row.get("patient_id"))),
        row_hash=row_hash,
        **fields,
    )


def case_ref(case_id: object, *, site: str, deid: Deidentifier) -> str | None:
    """The case's pseudonym, which receipts and quarantine items name a case by (with its row
    number): hospitals often use the patient's record number as case_id."""
    text = _text(case_id)
    return _case_pseudonym(text, site=site, deid=deid) if text else None


def _case_pseudonym(case_id: str, *, site: str, deid: Deidentifier) -> str:
    """The case's pseudonym; a case_id that is one already (a site's gateway sends its cases
    pseudonymised, bonebase/gateway) is kept, so the gateway's case and a folder's link up."""
    if deid.is_pseudonym(site, case_id):
        return case_id
    return deid.pseudonym(site, f"case\x1f{case_id}")


def plan_submission(manifest: pd.DataFrame, results: list[FileResult], report, *, site: str,
                    deid: Deidentifier, matching: match.Matching | None = None) -> Plan:
    """Turn validation failures and file results into accepted cases and quarantine items.

    ``matching`` is the submission's (:func:`match_submission`); the default rule's when None.
    """
    plan = Plan()
    if matching is None:
        matching = match_submission(manifest, results, site=site, deid=deid)
    plan.matching = matching

    def ref(case_id: object) -> str | None:
        return case_ref(case_id, site=site, deid=deid)

    plan.scrub = Redactor(identifying_values(manifest, results, site=site, deid=deid))

    # Files that could not be read or de-identified, and byte-identical copies inside the submission.
    first_of: dict[str, str] = {}
    rejected_files: set[str] = set()
    for r in results:
        if r.source_sha256 in first_of:
            item = QuarantineItem("duplicate_file", f"{r.rel}: identical to {first_of[r.source_sha256]}"
                                  " in the same submission; the copy was not stored", file=r.rel)
            plan.quarantine.append((item, r))
            rejected_files.add(r.rel)
            continue
        first_of[r.source_sha256] = r.rel
        if r.reason:
            plan.quarantine.append((QuarantineItem(r.reason, plan.clean(r.message or r.reason),
                                                   file=r.rel), r))
            rejected_files.add(r.rel)

    # Validation errors on files and rows; warnings are reported, not enforced.
    by_rel = {r.rel: r for r in results}
    rejected_rows: dict[int, str] = {}
    for f in report.failures:
        if f.severity != "error":
            plan.warnings.append({"reason": f.reason, "message": plan.clean(f.message),
                                  "row": f.row, "case": ref(f.case_id), "file": plan.redact(f.file)})
            continue
        if f.file is not None and f.file in by_rel:
            if f.file not in rejected_files:
                plan.quarantine.append((QuarantineItem(f.reason, plan.clean(f.message), file=f.file,
                                                       case_ref=ref(f.case_id)), by_rel[f.file]))
                rejected_files.add(f.file)
        elif f.row is not None:
            if f.row not in rejected_rows:
                plan.quarantine.append((QuarantineItem(f.reason, plan.clean(f.message),
                                                       row_number=int(f.row), case_ref=ref(f.case_id)),
                                        None))
            rejected_rows.setdefault(int(f.row), f.reason)
        else:
            plan.notes.append(plan.clean(f.message))

    # Files to rows by the submission's match rule (the one the cross-suite checked).
    rows = manifest.to_dict("records")
    by_number = {int(row["row"]): row for row in rows}
    files_of: dict[int, list[FileResult]] = defaultdict(list)
    for r in results:
        if r.rel in rejected_files or r.record is None:
            continue
        number = matching.row_of(r.rel)
        if number is None:
            item = QuarantineItem("images_without_row", f"{r.rel}: matches no manifest row by "
                                  f"{matching.why_file.get(r.rel)}; add the case to the manifest"
                                  " or correct the ids", file=r.rel)
            plan.quarantine.append((item, r))
            continue
        if number in rejected_rows:
            item = QuarantineItem(
                "case_rejected", f"{r.rel}: its case (row {number}) was rejected"
                f" ({rejected_rows[number]}); it is kept until the row is fixed",
                file=r.rel, row_number=number, case_ref=ref(by_number[number].get("case_id")))
            plan.quarantine.append((item, r))
            continue
        files_of[number].append(r)

    for row in rows:
        number = int(row["row"])
        if number in rejected_rows:
            continue
        files = files_of.get(number, [])
        if not files:
            if not any(i.row_number == number for i, _ in plan.quarantine):
                why = matching.why_row.get(number) or "rule " + matching.rule
                plan.quarantine.append((QuarantineItem(
                    "row_without_images", f"row {number}: no accepted image of the submission "
                    f"matches it ({why}); send the images or correct the row",
                    row_number=number, case_ref=ref(row.get("case_id"))),
                    None))
            continue
        record = case_record(row, site=site, deid=deid)
        plan.cases.append(CasePlan(number, record.case_pseudonym, record, files))
    return plan


def match_submission(manifest: pd.DataFrame, results: list[FileResult], *, site: str,
                     deid: Deidentifier, rule: str = match.DEFAULT, origin: str = "the default",
                     base: str = "", named: dict[str, list[int]] | None = None) -> match.Matching:
    """The submission's images matched to its rows by ``rule`` (see :mod:`bonebase.ingest.match`);
    ``named``: the files rows name in image_file (bonebase.ingest.named), matched to those rows."""
    match.require_columns(rule, manifest.columns)
    images = match.images_of_results(results, site=site, deid=deid)
    return match.match(manifest.to_dict("records"), images, rule=rule, origin=origin, base=base,
                       named=named)


def identifying_values(manifest: pd.DataFrame, results: list[FileResult], *, site: str,
                       deid: Deidentifier) -> set[str]:
    """What a receipt must not show: the files' identifying values, the manifest's ids, what
    the match rules compare (dates, UIDs, folder names), and dates in the files' paths."""
    identifiers = set().union(*(r.identifiers for r in results)) if results else set()
    for col in ("patient_id", "accession_number", "case_id"):
        if col in manifest:
            identifiers |= {_text(v) for v in manifest[col] if len(_text(v)) >= 3}
    images = match.images_of_results(results, site=site, deid=deid)
    identifiers |= match.identifying_values(manifest, images)
    identifiers |= match.dates_in_paths(r.rel for r in results)
    return identifiers


def instance_record(r: FileResult, *, object_key: str) -> InstanceRecord:
    rec = r.record or {}
    return InstanceRecord(
        study_uid=r.study_uid, series_uid=r.series_uid, sop_instance_uid=r.sop_instance_uid,
        sop_class_uid=r.extra.get("sop_class_uid"), modality=str(rec.get("modality") or ""),
        sha256=r.sha256, source_sha256=r.source_sha256, object_key=object_key,
        size_bytes=r.out_size if r.out_size is not None else r.size, study_date=r.study_date,
        study_description=r.extra.get("study_description"),
        series_description=r.extra.get("series_description"), body_part=r.extra.get("body_part"),
        rows=rec.get("rows"), columns=rec.get("columns"), bits_stored=rec.get("bits_stored"),
        photometric=rec.get("photometric_interpretation"),
        instance_number=r.extra.get("instance_number"),
    )
