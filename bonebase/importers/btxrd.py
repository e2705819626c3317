"""BTXRD's table read and checked: each row an image case, or a finding with its reason (#20).

``dataset.csv`` (UTF-8 with or without a BOM, ``,`` or ``;``, any line ends) or ``dataset.xlsx``
holds one row per image with 37 columns: ``image_id, center, age, gender``, then 0/1 groups:
anatomical sites (bones and joints, several may be marked), tumour (``tumor``, ``benign``,
``malignant``), nine subtypes, limb region and view. A row whose groups do not add up (no 1 or
two 1s where one is expected, a subtype that contradicts benign/malignant, a value other than
0/1) is a finding: it is quarantined with its reason, never guessed.

Pseudo-patients: BTXRD has no patient identifier, but a patient's views are consecutive rows
with the same centre, age, gender and anatomical site marks. Such a run of rows is one pseudo
patient (``BTXRD<centre>-<first image id>``), so splits never separate views of one patient.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from bonebase import vocab
from bonebase.errors import InputError
from bonebase.importers.btxrd_sample import COLUMNS, SITE_COLUMNS, SUBTYPE_COLUMNS

FLAG_COLUMNS = COLUMNS[4:]
REGIONS = ("upper limb", "lower limb", "pelvis")
VIEWS = ("frontal", "lateral", "oblique")
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class Finding:
    """A row or file the import cannot use, as a quarantine item: reason, message, place."""

    reason: str
    message: str
    row: int | None = None  # data row of the table, 1-based
    file: str | None = None  # path inside the dataset folder
    centre: int | None = None


@dataclass(frozen=True)
class ImageRow:
    row: int  # data row, 1-based
    image: str  # file name as listed, e.g. IMG000001.jpeg (an id without suffix is looked up)
    centre: int
    age: int
    sex: str
    marked_sites: tuple[str, ...]
    location: vocab.Location
    diagnosis: vocab.Diagnosis
    view: str
    patient: str = ""  # the pseudo-patient, set by group_patients

    @property
    def stem(self) -> str:
        return self.image.rsplit(".", 1)[0] if "." in self.image else self.image


def find_table(root: Path) -> Path:
    """dataset.csv (preferred) or dataset.xlsx in the dataset folder or one folder below."""
    for name in ("dataset.csv", "dataset.xlsx"):
        for candidate in (root / name, *sorted(root.glob(f"*/{name}"))):
            if candidate.is_file():
                return candidate
    raise InputError(f"{root}: no dataset.csv or dataset.xlsx here or one folder below; give "
                     "the folder that BTXRD's download unpacks to (it holds images/, "
                     "Annotations/ and dataset.csv)")


def read_table(path: Path) -> list[dict[str, str]]:
    """The table's rows as {column: text}, header checked against BTXRD's 37 columns."""
    if path.suffix.lower() == ".xlsx":
        header, rows = _read_xlsx(path)
    else:
        header, rows = _read_csv(path)
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path.name}: missing column(s) {', '.join(missing)}; BTXRD's table has "
                         f"these 37 columns: {','.join(COLUMNS)}")
    if len(rows) > MAX_ROWS:
        raise InputError(f"{path.name}: more than {MAX_ROWS} rows; BTXRD has 3,746")
    return [{n: (v or "").strip() for n, v in zip(names, r, strict=False)} for r in rows]


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name}: byte {exc.start} is not UTF-8; save the table as CSV UTF-8"
                         " (or give dataset.xlsx)") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"{path.name}: empty; expected BTXRD's header and a row per image")
    return rows[0], rows[1:]


def _read_xlsx(path: Path) -> tuple[list[str], list[list[str]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a damaged file
        raise InputError(f"{path.name}: not a readable Excel workbook ({type(exc).__name__}); "
                         "save it again from Excel, or give dataset.csv") from None
    try:
        rows = [["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer()
                                       else str(v)) for v in r]
                for r in wb.worksheets[0].iter_rows(values_only=True)]
    finally:
        wb.close()
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"{path.name}: the first sheet is empty")
    return rows[0], rows[1:]


def _marked(row: dict[str, str], columns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if row[c] == "1"]


def parse_row(n: int, row: dict[str, str], *, table: str) -> ImageRow | Finding:
    """One table row checked: its image case, or the first finding that stops it."""
    image = row["image_id"]
    where = f"{table} row {n}" + (f" ({image})" if image else "")

    def finding(reason: str, text: str) -> Finding:
        return Finding(reason, f"{where}: {text}", row=n, file=table,
                       centre=int(row["center"]) if row["center"] in ("1", "2", "3") else None)

    if not image or "/" in image or "\\" in image or image.startswith("."):
        return finding("missing_value", "image_id is empty or not a file name; give the "
                       "image's file name, e.g. IMG000001.jpeg")
    if not row["center"].isdigit():
        return finding("bad_value", "center is not a centre number (1, 2 or 3)")
    bad = [c for c in FLAG_COLUMNS if row[c] not in ("0", "1")]
    if bad:
        return finding("bad_value", f"column {bad[0]!r} is not 0 or 1"
                       f"{f' (and {len(bad) - 1} more columns)' if len(bad) > 1 else ''}")
    try:
        age = int(float(row["age"]))
    except ValueError:
        age = -1
    if not 0 <= age <= 100:
        return finding("impossible_age", "age is not a whole number of years in 0-100")
    sex = row["gender"].upper()
    if sex not in ("M", "F"):
        return finding("unknown_sex", "gender is not M or F")
    checked = _groups(row)
    if isinstance(checked, str):
        return finding("one_hot_group", checked)
    diagnosis, view = checked
    location = vocab.btxrd_location(_marked(row, SITE_COLUMNS))
    if location is None:
        return finding("one_hot_group", "no anatomical site column is 1 (hand … shoulder-joint);"
                       " mark the bone or joint the image shows")
    return ImageRow(row=n, image=image, centre=int(row["center"]), age=age, sex=sex,
                    marked_sites=tuple(_marked(row, SITE_COLUMNS)), location=location,
                    diagnosis=diagnosis, view=view)


def _one(row: dict[str, str], columns: tuple[str, ...], group: str, *,
         expected: bool = True) -> str | None:
    """None when exactly one of ``columns`` is 1 (or none, when not ``expected``), else why not."""
    marked = _marked(row, columns)
    if not expected and marked:
        return f"{group} column {marked[0]!r} is 1 but tumor is 0; a normal image has no {group}"
    if expected and len(marked) != 1:
        have = f"{' and '.join(repr(c) for c in marked)} are 1" if marked else "none is 1"
        return f"{group} columns ({', '.join(columns)}): {have}; exactly one is expected"
    return None


def _groups(row: dict[str, str]) -> tuple[vocab.Diagnosis, str] | str:
    """The diagnosis and view a row's 0/1 groups give, or the message of the group that fails."""
    tumour = row["tumor"] == "1"
    problem = (_one(row, ("benign", "malignant"), "behaviour", expected=tumour)
               or _one(row, SUBTYPE_COLUMNS, "subtype", expected=tumour)
               or _one(row, REGIONS, "limb region")
               or _one(row, VIEWS, "view"))
    if problem:
        return problem
    view = _marked(row, VIEWS)[0]
    if not tumour:
        return vocab.DIAGNOSES["normal"], view
    subtype = _marked(row, SUBTYPE_COLUMNS)[0]
    diagnosis = vocab.DIAGNOSES[vocab.BTXRD_SUBTYPES[subtype]]
    said = _marked(row, ("benign", "malignant"))[0]
    if vocab.task_label("benign_vs_malignant", diagnosis) != (said == "malignant"):
        return (f"subtype {subtype!r} ({diagnosis.name}, {diagnosis.behaviour}) contradicts "
                f"{said!r} = 1; correct either column")
    return diagnosis, view


def group_patients(rows: list[ImageRow]) -> list[ImageRow]:
    """Rows with their pseudo-patient: a run of consecutive rows (table order) with the same
    centre, age, sex and anatomical site marks is one patient, named after its first image."""
    out: list[ImageRow] = []
    key = None
    patient = ""
    for r in rows:
        this = (r.centre, r.age, r.sex, r.marked_sites)
        if this != key:
            key, patient = this, f"BTXRD{r.centre}-{r.stem}"
        out.append(ImageRow(**{**r.__dict__, "patient": patient}))
    return out
