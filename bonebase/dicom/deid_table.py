"""DICOM PS3.15 Annex E Table E.1-1, compiled into one action per tag for bonebase's profile.

The table itself is data (``ps315_annex_e.csv`` beside this module, sources cited in its header):
the Basic Profile column is from edition 2026c; the option columns are from the edition current
in April 2020 (2020a/b) because no newer machine-readable copy with option columns was at hand.
Rows added to the standard since then carry no option columns (``options_from`` empty); for
those, :func:`effective_action` falls back to the Basic Profile, which only ever removes more.

bonebase applies the Basic Application Level Confidentiality Profile with three options:
Retain Patient Characteristics, Retain Longitudinal Temporal Information with Modified Dates and
Clean Descriptors. Each row is reduced to one action code:

``X`` remove, ``Z`` zero length, ``D`` dummy value, ``K`` keep, ``C`` clean (dates shifted,
text scrubbed of identifying values, sequences walked), ``U`` replace UIDs (sequences walked).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pydicom.datadict import dictionary_VR

TABLE_FILE = "ps315_annex_e.csv"
TABLE_EDITIONS = "PS3.15 Table E.1-1 2026c, option columns 2020a/b"

# The option columns bonebase applies (CID 7050 codes in deid.py name the same options); the
# Clean Descriptors option only where a site keeps descriptors (default: the Basic Profile
# removes them).
OPTION_COLUMNS = ("rtn_pat_chars", "rtn_long_modif_dates", "clean_desc")
CLEAN_DESCRIPTORS = "clean_desc"

# Where the Basic Profile leaves a choice (X/Z, X/D, Z/D, X/Z/D) the standard picks by the
# attribute's type in the IOD, which a per-attribute table cannot know. Z never leaks a value
# and keeps Type 2 attributes present; X/D becomes X because a dummy is only needed for Type 1
# attributes, which are rarely in that group. X/Z/U* (referenced image/source image sequences)
# keeps the sequence with its UIDs replaced, so references inside a study stay resolvable.
_COMBINED = {"X/Z": "Z", "X/D": "X", "Z/D": "Z", "X/Z/D": "Z", "X/Z/U*": "U"}
_DATE_VRS = frozenset({"DA", "DT", "TM"})


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1 as shipped: tag pattern, name, Basic Profile and option actions."""

    tag: str
    name: str
    basic: str
    options: dict[str, str]
    options_known: bool


@dataclass(frozen=True)
class ActionTable:
    """Compiled actions: exact tags in a dict, repeating groups (curves, overlays) as masks."""

    exact: dict[int, str]
    masked: tuple[tuple[int, int, str], ...]  # (mask, value, action)
    names: dict[int, str]

    def action(self, tag: int) -> str | None:
        """Return the action for ``tag``, or None when the table does not list it."""
        found = self.exact.get(tag)
        if found is not None:
            return found
        for mask, value, action in self.masked:
            if tag & mask == value:
                return action
        return None


def load_rows() -> list[TableRow]:
    """Read the shipped table file into rows (comment lines start with ``#``)."""
    text = resources.files("bonebase.dicom").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    rows = []
    for rec in csv.DictReader(lines):
        options = {col: rec[col] for col in OPTION_COLUMNS if rec.get(col)}
        rows.append(
            TableRow(
                tag=rec["tag"].lower(),
                name=rec["name"],
                basic=rec["basic"],
                options=options,
                options_known=bool(rec["options_from"]),
            )
        )
    return rows


def _vr_of(tag: str) -> str | None:
    if "x" in tag:
        return None
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:  # newer than pydicom's dictionary
        return None


def effective_action(row: TableRow, *, clean_descriptors: bool = True) -> str:
    """Reduce one row to the single action bonebase applies (see the module docstring).

    ``clean_descriptors`` False leaves out the Clean Descriptors option: descriptions, comments
    and histories get the Basic Profile's action (removed)."""
    values = {action for col, action in row.options.items()
              if clean_descriptors or col != CLEAN_DESCRIPTORS}
    if "C" in values:  # clean wins over keep: it is the more protective of the two
        return "C"
    if "K" in values:
        return "K"
    if not row.options_known and "D" in row.basic and _vr_of(row.tag) in _DATE_VRS:
        # A date row newer than our option columns: in every dated row of the 2020 table the
        # Modified Dates option is C, and a shifted date is a valid dummy for the D action.
        return "C"
    return _COMBINED.get(row.basic, row.basic)


def _mask(tag: str) -> tuple[int, int]:
    mask = int("".join("0" if ch == "x" else "f" for ch in tag), 16)
    value = int(tag.replace("x", "0"), 16)
    return mask, value


def descriptor_tags() -> frozenset[int]:
    """Tags the Clean Descriptors option cleans (which the Basic Profile removes or empties)."""
    return frozenset(int(row.tag, 16) for row in load_rows()
                     if "x" not in row.tag and row.options.get(CLEAN_DESCRIPTORS) == "C"
                     and _vr_of(row.tag) not in _DATE_VRS)


@cache
def action_table(clean_descriptors: bool = False) -> ActionTable:
    """Load and compile the table once per process (and per choice of Clean Descriptors)."""
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    names: dict[int, str] = {}
    for row in load_rows():
        action = effective_action(row, clean_descriptors=clean_descriptors)
        if "x" in row.tag:
            mask, value = _mask(row.tag)
            masked.append((mask, value, action))
        else:
            exact[int(row.tag, 16)] = action
            names[int(row.tag, 16)] = row.name
    return ActionTable(exact=exact, masked=tuple(masked), names=names)
