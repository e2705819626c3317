"""The manifest's image_file and annotation_file columns: files named by their row.

A JPEG or PNG has no header to match on, so its row names it (docs/manifest.md, "JPEG and PNG
images"): ``image_file`` holds the row's image paths relative to the folder of manifest.csv,
several as a ``;`` list; ``annotation_file`` the LabelMe JSON of each, in the same order (an
empty place: that image has none). A DICOM file may be named too; it then belongs to that row
whatever the match rule says.

Problems are row failures that name row, column and file, never an identifying value:
``image_file_missing`` and ``bad_file_path`` reject the row (its case would be incomplete);
``annotation_file_missing`` and ``annotation_file_mismatch`` are warnings (the images are
stored without the outline).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from bonebase.dicom.raster import RowValues
from bonebase.ingest.scan import FileEntry
from validation.messages import Failure

IMAGE, ANNOTATION = "image_file", "annotation_file"
COLUMNS = (IMAGE, ANNOTATION)


@dataclass
class Named:
    """What a manifest's file columns name, and the files left to process."""

    entries: list[FileEntry]  # to process: images (named ones carry their row), other files
    rows_of: dict[str, list[int]] = field(default_factory=dict)  # named image -> rows, in order
    annotation_of: dict[str, str] = field(default_factory=dict)  # image -> its annotation file
    annotations: dict[str, FileEntry] = field(default_factory=dict)  # named annotation files
    problems: list[Failure] = field(default_factory=list)


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def _paths(cell: object) -> list[str]:
    """The ';' list of a cell, positions kept (an empty place is '')."""
    text = _text(cell)
    return [p.strip() for p in text.split(";")] if text else []


def _resolve(path: str, base: str) -> str | None:
    """``path`` (relative to the manifest's folder ``base``) as a '/'-path in the submission;
    None when it is absolute or climbs out of the submission."""
    text = path.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [p for p in (base + "/" + text if base else text).split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def _problem(reason: str, message: str, *, row: int, case_id: str | None, column: str,
             severity: str = "error") -> Failure:
    return Failure(suite="manifest_files", expectation="named_files", severity=severity,
                   reason=reason, message=message, row=row, case_id=case_id, field=column)


def _values(row: dict, number: int, position: int) -> RowValues:
    from bonebase.ingest.match import _date

    return RowValues(row=number, patient_id=_text(row.get("patient_id")),
                     accession_number=_text(row.get("accession_number")),
                     study_date=_date(row.get("study_date")) or "",
                     sex=_text(row.get("sex")), age=_text(row.get("age")),
                     modalities=_text(row.get("modalities")), position=position,
                     case_id=_text(row.get("case_id")))


def attach(manifest: pd.DataFrame, entries: list[FileEntry], *, base: str) -> Named:
    """Entries with the rows that name them; annotation files set apart; row problems.

    ``base`` is the folder of manifest.csv in the submission ('' at its root)."""
    if IMAGE not in manifest.columns and ANNOTATION not in manifest.columns:
        return Named(entries=list(entries))
    by_rel = {e.rel: e for e in entries}
    lower = {e.rel.lower(): e.rel for e in entries}
    named = Named(entries=[])
    first_row: dict[str, RowValues] = {}
    for row in manifest.to_dict("records"):
        number = int(row["row"])
        case_id = _text(row.get("case_id")) or None
        images, notes = _paths(row.get(IMAGE)), _paths(row.get(ANNOTATION))
        if len([p for p in notes if p]) and len(notes) > len(images):
            named.problems.append(_problem(
                "annotation_file_mismatch",
                f"row {number}, annotation_file: names {len(notes)} files where image_file names "
                f"{len(images)}; give at most one annotation per image, in image_file's order "
                "(an empty place for an image without one); the images are stored without "
                "outlines", row=number, case_id=case_id, column=ANNOTATION, severity="warning"))
            notes = []
        for position, path in enumerate(images, 1):
            rel = _resolve(path, base) if path else None
            if rel is None:
                what = "is empty" if not path else "is absolute or leaves the submission ('..')"
                named.problems.append(_problem(
                    "bad_file_path", f"row {number}, image_file: place {position} {what}; name "
                    "each image by its path relative to the folder of manifest.csv, e.g. "
                    "images/IMG000001.jpeg", row=number, case_id=case_id, column=IMAGE))
                continue
            if rel not in by_rel:
                near = lower.get(rel.lower())
                hint = (f" (the submission holds {near}: paths are case-sensitive)" if near
                        else "")
                named.problems.append(_problem(
                    "image_file_missing", f"row {number}, image_file: {path} is not in the "
                    f"submission{hint}; send the file or correct the path (relative to the "
                    "folder of manifest.csv)", row=number, case_id=case_id, column=IMAGE))
                continue
            named.rows_of.setdefault(rel, []).append(number)
            first_row.setdefault(rel, _values(row, number, position))
            note = notes[position - 1] if position <= len(notes) else ""
            if note:
                _annotation(named, note, rel, base, by_rel, number=number, case_id=case_id)
    for entry in entries:
        if entry.rel in named.annotations:
            continue
        named.entries.append(replace(entry, named=first_row.get(entry.rel), listing=True))
    return named


def _annotation(named: Named, path: str, image: str, base: str, by_rel: dict, *, number: int,
                case_id: str | None) -> None:
    rel = _resolve(path, base)
    if rel is None or rel not in by_rel:
        what = ("is absolute or leaves the submission ('..')" if rel is None
                else "is not in the submission")
        named.problems.append(_problem(
            "annotation_file_missing", f"row {number}, annotation_file: {path} {what}; send the "
            "LabelMe file or correct the path (relative to the folder of manifest.csv); the "
            "image is stored without its outline", row=number, case_id=case_id,
            column=ANNOTATION, severity="warning"))
        return
    named.annotation_of[image] = rel
    named.annotations[rel] = by_rel[rel]


def plan_annotations(plan, named: Named, *, limit: int = 32 << 20) -> None:
    """Check each accepted image's LabelMe file against the stored image and keep its shapes
    for storing (``plan.annotations``, by the stored file's sha256). A file that cannot be
    stored is a quarantine item of its own; its image is stored without outline."""
    from bonebase.db.quarantine import QuarantineItem
    from bonebase.ingest.annotations import AnnotationError, parse_labelme

    if not named.annotation_of:
        return
    accepted = {r.rel: (case, r) for case in plan.cases for r in case.files}
    for image, note in sorted(named.annotation_of.items()):
        entry = named.annotations[note]
        rows = named.rows_of.get(image, [])
        where = f"{note} (row {rows[0]}, annotation_file)" if rows else note
        if entry.refused is not None:
            from bonebase.ingest.limits import refusal_message

            plan.quarantine.append((QuarantineItem(
                entry.refused, refusal_message(note, entry.refused, entry.size), file=note,
                row_number=rows[0] if rows else None), None))
            continue
        if image not in accepted:
            plan.quarantine.append((QuarantineItem(
                "annotation_without_image", f"{where}: its image {image} was not accepted (see "
                "its own item); the annotation is kept and stored when the image is",
                file=note, row_number=rows[0] if rows else None), None))
            continue
        case, result = accepted[image]
        rec = result.record or {}
        try:
            if entry.size > limit:
                raise AnnotationError("bad_annotation", f"{note}: over {limit >> 20} MB")
            data = _read_plain(entry.path)
            shapes = parse_labelme(data, name=where, rows=int(rec.get("rows") or 0),
                                   columns=int(rec.get("columns") or 0))
        except AnnotationError as exc:
            plan.quarantine.append((QuarantineItem(
                exc.reason, plan.clean(exc.message), file=note, row_number=case.row,
                case_ref=case.case_ref), None))
            continue
        except OSError:
            plan.quarantine.append((QuarantineItem(
                "missing_file", f"{note}: the file disappeared during ingestion; send it again",
                file=note, row_number=case.row, case_ref=case.case_ref), None))
            continue
        plan.annotations[result.sha256] = shapes


def _read_plain(path) -> bytes:
    import os

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def conversion_warnings(plan) -> None:
    """A receipt warning per accepted JPEG/PNG whose pixels were changed when it was wrapped
    (turned upright, CMYK to RGB, palette expanded: bonebase.dicom.raster)."""
    for case in plan.cases:
        for r in case.files:
            for note in (r.extra.get("raster") or {}).get("notes", ()):
                plan.warnings.append({"reason": "image_converted",
                                      "message": plan.clean(f"{r.rel} (row {case.row}): {note}"),
                                      "row": case.row, "case": case.case_ref,
                                      "file": plan.redact(r.rel)})
