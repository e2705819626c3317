"""The copies of a submission's frames that GX sees, with identifying values masked.

GX keeps what it validates in its results and renders it into Data Docs (unexpected values,
the index columns naming failing records). Hospitals name folders and files after PatientIDs
and accession numbers and often use the record number as case id, so Data Docs built from the
raw frames held them. Checks run on the masked copies; the runner maps failures back to the
raw records (by position) for the site's receipt, which ingest redacts on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from bonebase.ingest.redact import MARK, Redactor

# Columns whose values are identifiers: replaced by opaque tokens (equal value, equal token, so
# "not null" and "same case" checks are unchanged). No expectation compares their text.
TOKENISED = {
    "case_id": "case",
    "patient_id": "patient",
    "accession_number": "accession",
    "sop_instance_uid": "sop",
    "study_instance_uid": "study",
    "series_instance_uid": "series",
}

_UID = re.compile(r"[0-9]+(?:\.[0-9]+)+")


def _stem(part: str) -> str:
    """A path part without a file extension ("1.2.3.dcm" -> "1.2.3")."""
    head, dot, ext = part.rpartition(".")
    return head if dot and ext and not ext.isdigit() else part


class Masker:
    """Masks frames of one submission consistently (same value -> same token in every frame)."""

    def __init__(self, frames: Iterable[pd.DataFrame], identifiers: Iterable[str] = ()) -> None:
        values = {str(v) for v in identifiers}
        for frame in frames:
            for col in TOKENISED:
                if col in frame.columns:
                    values |= {str(v) for v in frame[col].dropna().unique()}
        # UIDs go to an exact lookup of path parts (files named by SOP Instance UID): in the
        # Redactor thousands of values sharing the head "1" or "2" cost ~1 ms per path.
        self._uids = {v for v in values if _UID.fullmatch(v)}
        self._scrub = Redactor(values - self._uids)
        self._tokens: dict[tuple[str, str], str] = {}
        self._files: dict[str, str] = {}
        self._parts: dict[str, str] = {}

    def _token(self, col: str, value: object) -> object:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return value
        key = (col, str(value))
        if key not in self._tokens:
            self._tokens[key] = f"{TOKENISED[col]}-{len(self._tokens) + 1}"
        return self._tokens[key]

    def _file(self, value: object) -> object:
        """A path with identifying parts redacted, numbered so that two files never clash."""
        if not isinstance(value, str):
            return value
        if value not in self._files:
            path = "/".join(self._part(p) for p in value.split("/"))
            self._files[value] = f"#{len(self._files) + 1} {path}"
        return self._files[value]

    def _part(self, part: str) -> str:
        """One path part redacted, once per distinct part (folders repeat across files)."""
        if part not in self._parts:
            self._parts[part] = MARK if _stem(part) in self._uids else self._scrub.redact(part)
        return self._parts[part]

    def _text(self, series: pd.Series) -> pd.Series:
        """Strings redacted (once per distinct value); lists, numbers and nulls kept."""
        table: dict[str, str] = {}

        def one(value: object) -> object:
            if not isinstance(value, str):
                return value
            if value not in table:
                table[value] = self._scrub.redact(value)
            return table[value]

        return series.map(one)

    def mask(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` with identifiers tokenised and other text redacted, same order."""
        view = frame.copy()
        for col in view.columns:
            if col in TOKENISED:
                view[col] = view[col].map(lambda v, c=col: self._token(c, v)).astype(object)
            elif col == "file":
                view[col] = view[col].map(self._file).astype(object)
            elif view[col].dtype == object:
                # Free text (location, a sex typed as a name, ...) may repeat an identifier.
                view[col] = self._text(view[col])
        return view
