"""Which images belong to which manifest row: the match rules (docs/manifest.md, "Matching images
to rows").

One implementation, used by the validation cross-suite (``validation.cross_suite``) and by
ingest's plan (``bonebase.ingest.accept``). A rule names the manifest columns and the image
attributes compared; the submission's declaration wins, then the site's, then the default.
Explanations of a miss name rows, files, columns and the rule, never a value: receipts must not
quote PatientIDs, accession numbers, dates, UIDs or folder names.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from bonebase.errors import InputError

#: Rule -> the manifest columns it compares (with the images' attributes of the same meaning).
RULES: dict[str, str] = {
    "accession": "patient_id + accession_number",
    "patient_date": "patient_id + study_date",
    "study_uid": "study_instance_uid",
    "folder": "folder",
    "image_file": "image_file",
}
#: Used when neither the submission nor the site declares a rule. A row whose accession_number
#: is empty matches that patient's images that have no AccessionNumber.
DEFAULT = "accession"
#: Manifest columns that only some rules need; a manifest may leave them out.
#: image_file and annotation_file name a row's files (bonebase.ingest.named): a file a row names
#: belongs to that row whatever the rule; a JPEG or PNG, which has no header, only so.
OPTIONAL_COLUMNS = ("study_date", "study_instance_uid", "folder", "image_file", "annotation_file")
_NEEDS = {"patient_date": "study_date", "study_uid": "study_instance_uid", "folder": "folder",
          "image_file": "image_file"}
_SHOWN = 3  # rows or files named in one explanation


def check_rule(rule: str) -> str:
    """``rule`` if it is one of RULES; else an error listing them."""
    if rule not in RULES:
        names = ", ".join(f"{k} ({v})" for k, v in RULES.items())
        raise InputError(f"match rule {rule!r} is unknown: use one of {names}")
    return rule


def choose(submission: str | None, site: str | None) -> tuple[str, str]:
    """(rule, where it was declared): the submission's declaration, else the site's, else the
    default."""
    if submission:
        return check_rule(submission), "declared for this submission (--match)"
    if site:
        return check_rule(site), "the site's rule (bonebase site update --match)"
    return DEFAULT, "the default"


def require_columns(rule: str, columns) -> None:
    """Refuse a manifest that lacks the column ``rule`` compares, before any image is processed."""
    needed = _NEEDS.get(rule)
    if needed and needed not in set(columns):
        raise InputError(
            f"manifest.csv has no {needed} column, which the match rule {rule} ({RULES[rule]}) "
            f"needs: add the column (docs/manifest.md, 'Matching images to rows') or declare "
            f"another rule with --match")


@dataclass(frozen=True)
class Image:
    """What of one image's original header a rule compares (memory only: identifying)."""

    file: str
    patient_id: str = ""
    accession_number: str = ""
    study_date: str = ""  # YYYYMMDD
    study_uid: str = ""


@dataclass
class Matching:
    """The rows each image matched, and why an image or a row matched nothing."""

    rule: str
    origin: str = "the default"
    rows_of: dict[str, list[int]] = field(default_factory=dict)  # file -> rows, manifest order
    why_file: dict[str, str] = field(default_factory=dict)  # file matching no row -> why
    why_row: dict[int, str] = field(default_factory=dict)  # row matching no image -> why
    how: dict[int, str] = field(default_factory=dict)  # row with images -> how they matched

    def row_of(self, file: str) -> int | None:
        rows = self.rows_of.get(file)
        return rows[0] if rows else None

    @property
    def described(self) -> str:
        return f"{self.rule} ({RULES[self.rule]}), {self.origin}"


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def _date(value: object) -> str | None:
    """A manifest or DICOM date as YYYYMMDD; None when it is not a date."""
    digits = re.sub(r"[-./ ]", "", _text(value))
    if not re.fullmatch(r"\d{8}", digits):
        return None
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return digits


def _folder(value: object) -> str:
    """A folder as the manifest names it, as a '/'-separated relative path."""
    text = _text(value).replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN])
    more = f" and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else ""
    return ("row " if len(numbers) == 1 else "rows ") + shown + more


class _Rows:
    """The manifest's rows under one rule: keys, and rows by patient for explanations."""

    def __init__(self, rows: list[dict], rule: str, base: str) -> None:
        self.rule, self.base = rule, base
        self.by_key: dict[tuple, list[int]] = defaultdict(list)
        self.by_patient: dict[str, list[int]] = defaultdict(list)
        self.folders: dict[str, list[int]] = defaultdict(list)
        self.unkeyed: dict[int, str] = {}
        self.no_accession: set[int] = set()  # rows whose accession_number is empty
        for row in rows:
            number = int(row["row"])
            pid = _text(row.get("patient_id"))
            if rule == "image_file":  # rows are reached by the files they name only
                if not _text(row.get("image_file")):
                    self.unkeyed[number] = "its image_file is empty"
                continue
            if pid:
                self.by_patient[pid].append(number)
            if not _text(row.get("accession_number")):
                self.no_accession.add(number)
            key, problem = self._key(row, pid)
            if problem:
                self.unkeyed[number] = problem
            elif rule == "folder":
                self.folders[key[0]].append(number)
            else:
                self.by_key[key].append(number)

    def _key(self, row: dict, pid: str) -> tuple[tuple, str | None]:
        rule = self.rule
        if rule in ("accession", "patient_date") and not pid:
            return (), "its patient_id is empty"
        if rule == "accession":
            return (pid, _text(row.get("accession_number"))), None
        if rule == "patient_date":
            if not _text(row.get("study_date")):
                return (), "its study_date is empty"
            day = _date(row.get("study_date"))
            return ((pid, day), None) if day else ((), "its study_date is not a date (write "
                                                        "YYYY-MM-DD)")
        if rule == "study_uid":
            uid = _text(row.get("study_instance_uid"))
            return ((uid,), None) if uid else ((), "its study_instance_uid is empty")
        folder = _folder(row.get("folder"))
        if not folder:
            return (), "its folder is empty"
        return ("/".join(p for p in (self.base, folder) if p),), None

    def match(self, image: Image) -> list[int]:
        if self.rule == "image_file":
            return []
        if self.rule == "folder":  # the deepest named folder holding the file wins
            parts = image.file.split("/")[:-1]
            for depth in range(len(parts), 0, -1):
                found = self.folders.get("/".join(parts[:depth]))
                if found:
                    return list(found)
            return []
        if self.rule == "accession":
            key = (image.patient_id, image.accession_number)
        elif self.rule == "patient_date":
            key = (image.patient_id, image.study_date)
        else:
            key = (image.study_uid,)
        return list(self.by_key.get(key, ())) if all(key) or self.rule == "accession" else []


def _why_image(image: Image, rows: _Rows) -> str:
    """Why ``image`` matched no row, naming rows and attributes, never values."""
    same = rows.by_patient.get(image.patient_id, []) if image.patient_id else []
    rule = rows.rule
    if rule == "image_file":
        text = "no row names it in its image_file column"
    elif rule in ("accession", "patient_date") and not image.patient_id:
        text = "the image has no PatientID"
    elif rule == "accession" and same:
        if not image.accession_number:
            text = (f"PatientID matches {_rows(same)} but the image has no AccessionNumber and "
                    "the row's accession_number is filled (leave it empty for such images)")
        elif set(same) <= rows.no_accession:
            text = (f"PatientID matches {_rows(same)} but the row's accession_number is empty "
                    "and the image has an AccessionNumber")
        else:
            text = f"PatientID matches {_rows(same)} but AccessionNumber differs"
    elif rule == "patient_date" and not image.study_date:
        text = "the image has no readable StudyDate"
    elif rule == "patient_date" and same:
        text = f"PatientID matches {_rows(same)} but StudyDate differs from its study_date"
    elif rule == "study_uid":
        text = ("no row's study_instance_uid is its StudyInstanceUID"
                if image.study_uid else "the image has no StudyInstanceUID")
        text += f" (PatientID matches {_rows(same)})" if same else ""
    elif rule == "folder":
        text = "it lies in no folder that the folder column names"
        text += f" (PatientID matches {_rows(same)})" if same else ""
    else:
        text = "no row has its PatientID"
    return f"rule {rule} ({RULES[rule]}): {text}"


def _why_row(number: int, rows: _Rows, images_of_patient: dict[str, list[Image]],
             pid: str) -> str:
    rule = rows.rule
    if number in rows.unkeyed:
        text = rows.unkeyed[number]
    else:
        same = images_of_patient.get(pid, []) if pid else []
        names = ", ".join(i.file for i in same[:_SHOWN])
        if rule == "image_file":
            text = "no file it names in image_file was accepted"
        elif rule == "accession" and same:
            text = (f"{len(same)} image(s) with its patient_id as PatientID (e.g. {names}) have "
                    "another AccessionNumber")
        elif rule == "patient_date" and same:
            text = (f"{len(same)} image(s) with its patient_id as PatientID (e.g. {names}) have "
                    "another StudyDate")
        elif rule == "study_uid":
            text = "no image has its study_instance_uid as StudyInstanceUID"
        elif rule == "folder":
            text = "no image lies in its folder (a path relative to the folder of manifest.csv)"
        else:
            text = "no image has its patient_id as PatientID"
    return f"rule {rule} ({RULES[rule]}): {text}"


def match(manifest_rows: list[dict], images: list[Image], *, rule: str = DEFAULT,
          origin: str = "the default", base: str = "",
          named: dict[str, list[int]] | None = None) -> Matching:
    """Match ``images`` to ``manifest_rows`` (dicts with ``row`` and the manifest's columns).

    ``base`` is the folder of manifest.csv relative to the submission's root, which the folder
    column is relative to. ``named``: file -> the rows whose image_file names it
    (bonebase.ingest.named); those files match those rows, whatever the rule.
    """
    named = named or {}
    rows = _Rows(manifest_rows, check_rule(rule), _folder(base))
    out = Matching(rule=rule, origin=origin)
    images_of_patient: dict[str, list[Image]] = defaultdict(list)
    matched_rows: set[int] = set()
    for image in images:
        found = list(named[image.file]) if image.file in named else rows.match(image)
        out.rows_of[image.file] = found
        if found:
            matched_rows.update(found)
        else:
            out.why_file[image.file] = _why_image(image, rows)
            if image.patient_id:
                images_of_patient[image.patient_id].append(image)
    for row in manifest_rows:
        number = int(row["row"])
        if number in matched_rows:
            out.how[number] = _how(rule, row)
        else:
            out.why_row[number] = _why_row(number, rows, images_of_patient,
                                           _text(row.get("patient_id")))
    return out


def _how(rule: str, row: dict) -> str:
    if _text(row.get("image_file")):
        return "image_file: the files the row names"
    if rule == "accession" and not _text(row.get("accession_number")):
        return "accession: patient_id, the row and its images without accession number"
    return f"{rule}: {RULES[rule]}"


# -- the images of a submission ---------------------------------------------------------------

def original_date(study_date: date | None, patient_id: str, *, site: str, deid) -> str:
    """The image's StudyDate as the hospital wrote it (YYYYMMDD), from its de-identified
    (shifted) date: the shift is the patient's, which the key gives back."""
    if study_date is None or not patient_id:
        return ""
    offset = deid.date_offset(site, patient_id)
    return (study_date - timedelta(days=offset)).strftime("%Y%m%d")


def images_of_results(results, *, site: str, deid) -> list[Image]:
    """One Image per processed file (``FileResult`` with a header record)."""
    out = []
    for r in results:
        rec = r.record
        if rec is None:
            continue
        pid = _text(rec.get("patient_id"))
        out.append(Image(file=r.rel, patient_id=pid,
                         accession_number=_text(rec.get("accession_number")),
                         study_date=original_date(r.study_date, pid, site=site, deid=deid),
                         study_uid=_text(rec.get("study_instance_uid"))))
    return out


def images_of_frame(headers: pd.DataFrame) -> list[Image]:
    """One Image per row of a header frame (``bonebase.dicom.read.header_record`` rows)."""
    columns = {"patient_id": "patient_id", "accession_number": "accession_number",
               "study_date": "study_date", "study_uid": "study_instance_uid"}
    out = []
    for rec in headers.to_dict("records"):
        values = {k: _text(rec.get(col)) for k, col in columns.items()}
        values["study_date"] = _date(values["study_date"]) or ""
        out.append(Image(file=str(rec["file"]), **values))
    return out


# Not inside a longer number or a UID (1.2.840.20040826.5).
_DATE_IN_PATH = re.compile(r"(?<![0-9.])(?:\d{4}[-._]?\d{2}[-._]?\d{2}|\d{2}[-._]\d{2}[-._]\d{4})"
                           r"(?!\.?[0-9])")


def dates_in_paths(paths) -> set[str]:
    """Dates written in the paths' folder and file names (2004-08-26, 20040826, 26.08.2004):
    study or birth dates, which a receipt must not show even for a file that could not be read
    (no header tells its date then)."""
    found = set()
    names = {part for path in paths for part in path.split("/")}  # folders repeat: once each
    for name in names:
        for hit in _DATE_IN_PATH.finditer(name):
            text = hit.group()
            digits = re.sub(r"[-._]", "", text)
            if re.fullmatch(r"\d{2}[-._]\d{2}[-._]\d{4}", text):
                digits = digits[4:] + digits[2:4] + digits[:2]
            if _date(digits) and 1900 <= int(digits[:4]) <= 2100:
                found.add(text)
    return found


def identifying_values(manifest: pd.DataFrame, images: list[Image]) -> set[str]:
    """The values matching compares that receipts must not show (for the submission's
    redactor): dates in the forms hospitals write them, UIDs, folder names and their parts."""
    found: set[str] = set()
    days = {i.study_date for i in images if i.study_date}
    if "study_date" in manifest:
        days |= {d for d in (_date(v) for v in manifest["study_date"]) if d}
        found |= {_text(v) for v in manifest["study_date"]}
    for d in days:
        found |= {d, f"{d[:4]}-{d[4:6]}-{d[6:]}", f"{d[:4]}.{d[4:6]}.{d[6:]}",
                  f"{d[6:]}.{d[4:6]}.{d[:4]}", f"{d[:4]}_{d[4:6]}_{d[6:]}"}
    found |= {i.study_uid for i in images if i.study_uid}
    if "study_instance_uid" in manifest:
        found |= {_text(v) for v in manifest["study_instance_uid"]}
    if "folder" in manifest:
        for value in manifest["folder"]:
            folder = _folder(value)
            found |= {folder, *folder.split("/")}
    return {v for v in found if len(v) >= 3}  # as the redactor: shorter ones are not specific


def annotate(manifest: pd.DataFrame, headers: pd.DataFrame, matching: Matching
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copies of the frames with the matching as columns, for the cross-suite: ``match_rows``
    (';'-joined row numbers) and ``match_why`` per file, ``match_why`` per row."""
    m, h = manifest.copy(), headers.copy()
    files = h["file"].astype(str) if "file" in h else pd.Series([], dtype=object)
    h["match_rows"] = [";".join(map(str, matching.rows_of.get(f, []))) for f in files]
    h["match_why"] = [matching.why_file.get(f) for f in files]
    m["match_why"] = [matching.why_row.get(int(n)) for n in m["row"]]
    return m, h
