"""The receipt a site gets for a submission: counts, and per case and per file what happened."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from pathlib import Path

from bonebase.errors import BonebaseError
from bonebase.ingest.receipt_text import N_, to_markdown

# What a site should do for each reason code (the validation message says what was found).
FIXES = {
    "corrupt_file": N_("export the image again from the PACS as a DICOM Part 10 file and resubmit it"),
    "non_dicom": N_("remove files that are not DICOM images from the submission folder"),
    "corrupt_image": N_("export the JPEG/PNG image again and resubmit it"),
    "unsupported_image": N_("export the image as an 8/16-bit grey or 8-bit RGB PNG, a JPEG, or DICOM"),
    "unlisted_image": N_("name the JPEG/PNG in its case's image_file column, or remove it"),
    "unlisted_annotation": N_("name the JSON in its image's annotation_file place, or remove it"),
    "image_file_missing": N_("send the file the row names, or correct the path (relative to the "
    "folder of manifest.csv, case-sensitive)"),
    "bad_file_path": N_("name each image by its path relative to the folder of manifest.csv"),
    "annotation_file_missing": N_("send the LabelMe file, or correct the path"),
    "annotation_file_mismatch": N_("name one annotation per image, in image_file's order"),
    "annotation_without_image": N_("fix the image; the annotation is stored with it"),
    "bad_annotation": N_("export the annotation from LabelMe again (polygons and rectangles, "
    "drawn on this image)"),
    "annotation_outside_image": N_("check that the annotation belongs to this image"),
    "image_converted": N_("nothing; or send the image upright, in grey or RGB"),
    "duplicate_file": N_("nothing: the copy was not needed"),
    "row_without_images": N_("send the case's images, or correct the row or the match rule "
    "(docs/manifest.md, 'Matching images to rows')"),
    "images_without_row": N_("add the case to manifest.csv, correct the ids, or declare the match "
    "rule the images need (--match)"),
    "case_rejected": N_("fix the case's manifest row; the image is kept and ingested with it"),
    "impossible_age": N_("correct the age (whole years, 0-100) in the manifest"),
    "unknown_sex": N_("use M, F or O in the sex column"),
    "unknown_diagnosis": N_("use a diagnosis term of the WHO 2020 bone tumour vocabulary"),
    "unknown_location": N_("use a bone and segment, e.g. 'distal femur'"),
    "label_contradicts_diagnosis": N_("correct the behaviour column or the diagnosis"),
    "wrong_modality": N_("make the modalities column match the images sent (XR, CT, MR)"),
    "blank_image": N_("export the radiograph again; the file holds a blank image"),
    "duplicate_case_id": N_("give every case its own case_id"),
    "burned_in_annotation": N_("a data steward reviews the image for identifying text"),
    "burned_in_text": N_("a data steward reviews the image; or set the site's policy to redact "
    "(bonebase site update CODE --burned-in redact)"),
    "not_an_image": N_("send documents through the manifest's clinical data, not as images"),
    "secondary_capture": N_("send the original radiograph instead of a screen capture"),
    "phi_residue": N_("a data steward reviews the file; remove identifying text at the source"),
    "missing_file": N_("send the file again"),
    "missing_column": N_("add the missing column to manifest.csv (docs/manifest-template.csv)"),
    "missing_value": N_("fill in the required field of the row (docs/manifest.md)"),
    "unknown_modality": N_("use XR, CT or MR in the modalities column"),
    "no_radiograph": N_("send at least one radiograph (CR/DX) of the case, or remove XR from it"),
    "image_in_two_cases": N_("an image belongs to one case: fix the PatientID/AccessionNumber"),
    "inconsistent_sex": N_("make the manifest's sex match the images' PatientSex (or correct both)"),
    "unsupported_modality": N_("send radiographs, CT or MR only (no reports, SR or other objects)"),
    "image_dimensions": N_("export the image again: its rows/columns do not match its pixel data"),
    "tiny_image": N_("send the full-resolution image, not a thumbnail"),
    "bad_pixel_format": N_("export as 8-16 bit grayscale (MONOCHROME1/2) DICOM"),
    "undecodable_transfer_syntax": N_("export uncompressed or as JPEG/JPEG 2000 lossless"),
    "unsupported_transfer_syntax": N_("export uncompressed or as JPEG/JPEG 2000 lossless"),
    "identity_not_removed": N_("a data steward reviews the file; remove identifying data at the source"),
    "deidentification_failed": N_("export the file again from the PACS; if it repeats, tell the "
    "consortium's data stewards"),
    "held_for_review": N_("nothing now: the consortium's data stewards review the file"),
    "symbolic_link": N_("put the file itself in the submission folder; links are not followed"),
    "file_too_large": N_("send the image on its own, or ask the consortium about the size limit"),
    "decompression_bomb": N_("send the files uncompressed and resubmit"),
    "too_many_pixels": N_("export the image at its acquired size"),
    "too_deeply_nested": N_("export the image again from the PACS as a DICOM Part 10 file"),
    "not_utf8": N_("re-save manifest.csv as UTF-8 (Excel: Save As > CSV UTF-8) and resubmit"),
    "control_character": N_("retype the value without control characters"),
    "ragged_row": N_("one field per column; put values holding commas in double quotes"),
    "unparseable_date": N_("correct the date in the PACS export (DICOM dates are YYYYMMDD)"),
}


def fix_for(reason: str) -> str:
    """What the site does about a quarantine reason (``unparseable_date:<Keyword>`` included)."""
    return FIXES.get(reason.split(":", 1)[0], N_("see the message"))


def build_receipt(*, site: str, submission_id: int, source: str, plan, outcome,
                  n_files: int, n_rows: int, data_docs: str | None,
                  quarantined_by_reason: dict[str, int]) -> dict:
    """The receipt of a finished submission. ``outcome`` and ``quarantined_by_reason`` are read
    from the database (what the submission stored, whichever run stored it); cases are named by
    row number and pseudonym, never by the site's case_id."""
    quarantined = quarantine_entries(plan)
    files_accepted = sum(len(c.files) for c in plan.cases)
    counts = {
        "rows": n_rows,
        "files": n_files,
        "cases_accepted": len(plan.cases),
        "cases_new": outcome.cases["status"]["new"],
        "cases_updated": outcome.cases["status"]["updated"],
        "cases_unchanged": outcome.cases["status"]["unchanged"],
        "files_accepted": files_accepted,
        "files_stored": outcome.added,
        "files_duplicate": outcome.duplicates,
        "quarantined": sum(quarantined_by_reason.values()),
        "warnings": len(plan.warnings),
        "by_reason": dict(sorted(quarantined_by_reason.items())),
        **outlines(plan),
    }
    return {
        "site": site,
        "submission": submission_id,
        "status": "done",
        "source": plan.redact(source),
        "counts": counts,
        "match_rule": matching_rule(plan),
        "deidentified": deidentified(plan),
        "cases": [{**c, "matched_by": matched_by(plan, c["row"])} for c in outcome.case_results],
        "quarantine": quarantined,
        "warnings": plan.warnings,
        "notes": plan.notes,
        "data_docs": data_docs,
    }


def quarantine_entries(plan) -> list[dict]:
    """The receipt's quarantine list: per item its reason, place, message and fix (redacted)."""
    return [
        {"reason": item.reason, "severity": item.severity, "message": plan.redact(item.message),
         "file": plan.redact(item.file), "row": item.row_number, "case": item.case_ref,
         "fix": fix_for(item.reason)}
        for item, _ in plan.quarantine
    ]


def deidentified(plan) -> dict:
    """What de-identification did to the accepted files' content, counted (attribute keywords
    and numbers, never a value): free-text attributes removed or cleaned, and burned-in text
    read and blacked out (#19)."""
    from collections import Counter

    free_text: Counter = Counter()
    burned_in: Counter = Counter()
    metadata: Counter = Counter()  # JPEG segments cut out (APP1 = EXIF, COM, ...), by name
    for case in plan.cases:
        for r in case.files:
            for keyword, how in (r.extra.get("free_text") or {}).items():
                free_text[f"{keyword} {how}"] += 1
            for segment in (r.extra.get("raster") or {}).get("stripped", ()):
                metadata[segment] += 1
            for key, value in (r.extra.get("burned_in") or {}).items():
                if isinstance(value, int):
                    burned_in[key] += int(value)
    done = {"free_text": dict(sorted(free_text.items())),
            "burned_in_text": dict(sorted(burned_in.items()))}
    if metadata:  # submissions with JPEGs only
        done["image_metadata"] = dict(sorted(metadata.items()))
    return done


def outlines(plan) -> dict:
    """Lesion outlines (annotation_file) of the accepted images: counts, when there are any."""
    mine = {r.sha256 for case in plan.cases for r in case.files}
    kept = [shapes for sha, shapes in getattr(plan, "annotations", {}).items() if sha in mine]
    if not kept:
        return {}
    return {"images_outlined": len(kept), "outline_shapes": sum(len(s) for s in kept)}


def matching_rule(plan) -> str | None:
    """The submission's match rule and where it was declared."""
    return plan.matching.described if plan.matching is not None else None


def matched_by(plan, row: int) -> str | None:
    """How a case's images matched its row (the rule, and for a row without accession number
    that it matched its patient's images without one)."""
    return plan.matching.how.get(row) if plan.matching is not None else None


#: What `bonebase validate` cannot tell before the submission is stored.
NOT_PREDICTED = N_("which accepted cases are new, updated or unchanged, and which accepted "
                   "files the site sent before (submit counts them as already stored)")


def prediction(*, site: str, source: str, plan, n_files: int, n_rows: int, data_docs) -> dict:
    """What `bonebase submit` would report for a planned submission (`bonebase validate`):
    the receipt's cases, quarantine and warnings, with no submission id and nothing stored."""
    quarantined = quarantine_entries(plan)
    by_reason: dict[str, int] = {}
    for q in quarantined:
        by_reason[q["reason"]] = by_reason.get(q["reason"], 0) + 1
    return {
        "site": site,
        "submission": None,
        "status": "predicted",
        "source": plan.redact(source),
        "counts": {
            "rows": n_rows,
            "files": n_files,
            "cases_accepted": len(plan.cases),
            "files_accepted": sum(len(c.files) for c in plan.cases),
            "quarantined": len(quarantined),
            "warnings": len(plan.warnings),
            "by_reason": dict(sorted(by_reason.items())),
            **outlines(plan),
        },
        "match_rule": matching_rule(plan),
        "deidentified": deidentified(plan),
        "cases": [{"row": c.row, "case": c.case_ref, "matched_by": matched_by(plan, c.row),
                   "files": [plan.redact(r.rel) for r in c.files]} for c in plan.cases],
        "quarantine": quarantined,
        "warnings": plan.warnings,
        "notes": plan.notes,
        "not_predicted": NOT_PREDICTED,
        "data_docs": str(data_docs) if data_docs else None,
    }


def failure_receipt(*, site: str, submission_id: int, source: str, stage: str,
                    error: str, error_code: str = "unexpected_error") -> dict:
    """The receipt of a submission that could not be finished: where it stopped and what to do.
    ``error`` names the failure in English without quoting any file (messages can echo their
    contents); ``error_code`` is its stable code (:func:`failure_code`)."""
    return {
        "site": site,
        "submission": submission_id,
        "status": "failed",
        "source": source,
        "failed_at": stage,
        "error": error,
        "error_code": error_code,
        "what_to_do": N_("run the same submission again: whatever was stored is kept and nothing "
                         "is stored twice; if it fails again, send this receipt to the consortium's "
                         "data stewards"),
        "counts": {},
        "cases": [],
        "quarantine": [],
        "warnings": [],
        "notes": [],
        "data_docs": None,
    }


def describe_failure(exc: Exception, redact: Callable[[str], str], *,
                     translated: bool = False) -> str:
    """A failure in one line that quotes no file: our own errors' messages (written for people),
    else the exception's type and where it was raised. In English (what records keep), whatever
    the language the error was raised in; ``translated``: as it was raised (what the person who
    ran the submission reads)."""
    if isinstance(exc, BonebaseError):
        text = str(exc) if translated else exc.english
        return redact(text.splitlines()[0] if text else type(exc).__name__)
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return f"an unexpected error ({type(exc).__name__})"
    last = frames[-1]
    return (f"an unexpected error ({type(exc).__name__} in {Path(last.filename).name}:"
            f"{last.lineno}, {last.name})")


def failure_code(exc: Exception) -> str:
    """The stable code of a failure: our own errors' (``input_error``, ``not_found``,
    ``site_inactive``, ...), else ``unexpected_error``."""
    return exc.code if isinstance(exc, BonebaseError) else "unexpected_error"


def write_receipt(receipt: dict, folder: Path, lang: str | None = None) -> tuple[Path, Path]:
    """The receipt as JSON (the record: English, stable codes) and as Markdown in ``lang`` (the
    site's language; default: the current one)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"submission-{receipt['submission']}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    for path, text in ((json_path, json.dumps(receipt, indent=2, default=str)),
                       (md_path, to_markdown(receipt, lang))):
        # Whole or not at all: a receipt cut short by a crash would be read as the truth.
        part = path.with_name(f".{path.name}.part")
        part.write_text(text)
        part.replace(path)
    return json_path, md_path
