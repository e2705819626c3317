"""The hospital's clinical data on the gateway: CSV files in its ``clinical/`` folder.

Each row has the manifest's clinical columns (docs/manifest.md) and is keyed by the hospital's
own ``accession_number`` (one study) or ``patient_id`` (every study of the patient); the ids
never leave the gateway: the delivered manifest carries their pseudonyms.
"""

from __future__ import annotations

import csv
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from bonebase.errors import InputError

CLINICAL_COLUMNS = ("case_id", "sex", "age", "location", "diagnosis", "behaviour", "modalities",
                    "pathology_confirmed")
KEYS = ("patient_id", "accession_number")


@dataclass
class ClinicalTable:
    by_accession: dict[str, dict] = field(default_factory=dict)
    by_patient: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # file, row, what to do (no values)

    def find(self, patient_id: str, accession: str) -> dict | None:
        """The row for a study: its accession number first, then its patient."""
        if accession and accession in self.by_accession:
            return self.by_accession[accession]
        return self.by_patient.get(patient_id) if patient_id else None


_LOADED: dict[Path, tuple[tuple, ClinicalTable]] = {}


def _signature(paths: list[Path]) -> tuple:
    """What would make a read differ: each file's name, inode, size and modification time."""
    out = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            return ()  # gone between the listing and now: read again
        out.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def load(folder: Path) -> ClinicalTable:
    """Read every ``*.csv`` of ``folder`` (UTF-8, a BOM accepted); later files win.

    The serving gateway calls this on every work pass while a batch is held; the table is read
    again only when a file was added, removed or changed (the same table object otherwise:
    callers only read it)."""
    paths = sorted(folder.glob("*.csv"))
    signature = _signature(paths)
    cached = _LOADED.get(folder)
    if signature and cached is not None and cached[0] == signature:
        return cached[1]
    table = _read(paths)
    if signature:
        _LOADED[folder] = (signature, table)
    return table


def _read(paths: list[Path]) -> ClinicalTable:
    table = ClinicalTable()
    for path in paths:
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                header = [(h or "").strip().lower() for h in reader.fieldnames or []]
                if not any(k in header for k in KEYS):
                    table.problems.append(f"{path.name}: no patient_id or accession_number column;"
                                          " add one to key the rows")
                    continue
                for number, raw in enumerate(reader, 1):
                    row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()
                           if k is not None}
                    _add(table, row, path.name, number)
        except UnicodeDecodeError:
            table.problems.append(f"{path.name}: not UTF-8; re-save it as CSV UTF-8")
        except (OSError, csv.Error) as exc:
            table.problems.append(f"{path.name}: cannot be read ({type(exc).__name__})")
    return table


def _add(table: ClinicalTable, row: dict, name: str, number: int) -> None:
    accession, patient = row.get("accession_number", ""), row.get("patient_id", "")
    if not accession and not patient:
        table.problems.append(f"{name} row {number}: neither patient_id nor accession_number "
                              "is filled in; fill one of them")
        return
    if accession:
        table.by_accession[accession] = row
    else:
        table.by_patient[patient] = row


def save_posted(folder: Path, data: bytes) -> Path:
    """Keep a posted clinical CSV in ``folder`` (as if dropped there); InputError, naming what
    to fix, for one that is not UTF-8 or cannot key its rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("the clinical CSV is not UTF-8; re-save it as CSV UTF-8") from None
    header = [h.strip().lower() for h in next(csv.reader(text.splitlines()), [])]
    if not any(k in header for k in KEYS):
        raise InputError("the clinical CSV has no patient_id or accession_number column; add one "
                         f"to key the rows (columns: {', '.join(KEYS + CLINICAL_COLUMNS)})")
    name = f"posted-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}.csv"
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)  # whole or not at all: the work loop reads *.csv
    return folder / name
