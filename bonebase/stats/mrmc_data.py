"""Reader-study input: validate a ``reader,modality,case,truth,score`` table and reshape it into
a (modality, reader, case) score array for the MRMC analysis.

Every rejection names the row (as the line number in a CSV, header = line 1, when the frame
came from a file) and the column, and says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bonebase.errors import InputError

COLUMNS = ("reader", "modality", "case", "truth", "score")
MODEL_READER = "model"


@dataclass(frozen=True)
class ReaderStudy:
    """A fully crossed study: ``scores[modality, reader, case]``; cases share ``truth``."""

    modalities: list[str]
    readers: list[str]
    cases: list[str]
    truth: np.ndarray  # (n_cases,) 0/1
    scores: np.ndarray  # (n_modalities, n_readers, n_cases)


def _where(source: str, index: object, *, csv: bool) -> str:
    # pandas index i of a CSV frame is data row i, i.e. file line i + 2 (header is line 1).
    if csv and isinstance(index, (int, np.integer)):
        return f"{source} line {int(index) + 2}"
    return f"{source} row {index}"


def validate_frame(df: pd.DataFrame, *, source: str = "input", csv: bool = False) -> pd.DataFrame:
    """Check columns and values; return a clean copy (ids as str, truth int, score float)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; the table needs columns "
            f"{','.join(COLUMNS)} (truth 1 = diseased)"
        )
    out = df.loc[:, list(COLUMNS)].copy()
    for col in ("reader", "modality", "case"):
        blank = out[col].isna() | (out[col].astype(str).str.strip() == "")
        if blank.any():
            where = _where(source, out.index[blank.to_numpy()][0], csv=csv)
            raise InputError(f"{where}: column '{col}' is empty; give every row a {col} id")
        out[col] = out[col].astype(str).str.strip()

    score = pd.to_numeric(out["score"], errors="coerce")
    bad = score.isna() | ~np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        i = out.index[bad.to_numpy()][0]
        raise InputError(
            f"{_where(source, i, csv=csv)}: column 'score' is {df.loc[i, 'score']!r}, "
            "not a finite number; give a numeric rating or probability"
        )
    out["score"] = score.astype(float)

    truth = pd.to_numeric(out["truth"], errors="coerce")
    bad = ~truth.isin([0, 1])
    if bad.any():
        i = out.index[bad.to_numpy()][0]
        raise InputError(
            f"{_where(source, i, csv=csv)}: column 'truth' is {df.loc[i, 'truth']!r}; "
            "it must be 0 (non-diseased) or 1 (diseased)"
        )
    out["truth"] = truth.astype(int)

    per_case = out.groupby("case", sort=False)["truth"].nunique()
    if (per_case > 1).any():
        case = per_case.index[(per_case > 1).to_numpy()][0]
        rows = out.index[(out["case"] == case).to_numpy()]
        where = ", ".join(_where(source, r, csv=csv) for r in rows[:4])
        raise InputError(
            f"{source}: case {case!r} has both truth 0 and 1 (column 'truth', {where}); "
            "a case has one reference standard, fix its truth"
        )

    dup = out.duplicated(["reader", "modality", "case"], keep="first")
    if dup.any():
        i = out.index[dup.to_numpy()][0]
        r = out.loc[i]
        raise InputError(
            f"{_where(source, i, csv=csv)}: reader {r['reader']!r} scored case {r['case']!r} "
            f"in modality {r['modality']!r} twice; keep one row per reader, modality and case"
        )
    return out


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a reader-study CSV (ids kept as text) and validate it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{p}: no such file; give the path of a reader,modality,case,truth,score CSV"
        )
    try:
        df = pd.read_csv(p, dtype={"reader": str, "modality": str, "case": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not a readable CSV ({exc}); save it as UTF-8 CSV") from exc
    return validate_frame(df, source=str(p), csv=True)


def to_study(df: pd.DataFrame, *, source: str = "input") -> ReaderStudy:
    """Reshape a validated frame into a fully crossed ``ReaderStudy``.

    Modalities and readers keep their order of first appearance (the reported difference is
    first modality minus second). Raises ``InputError`` naming the first reader/modality that
    lacks a case, since the OR analysis needs every reader to read every case in every modality.
    """
    modalities = list(dict.fromkeys(df["modality"]))
    readers = list(dict.fromkeys(df["reader"]))
    cases = list(dict.fromkeys(df["case"]))
    if len(modalities) < 2:
        raise InputError(f"{source}: found modality {modalities}; an MRMC comparison needs >= 2")
    truth_by_case = df.drop_duplicates("case").set_index("case")["truth"]
    truth = truth_by_case.loc[cases].to_numpy(dtype=int)
    if truth.min() == truth.max():
        raise InputError(f"{source}: all cases have truth {truth[0]}; AUC needs both 0 and 1")

    wide = df.pivot(index=["modality", "reader"], columns="case", values="score")
    full = pd.MultiIndex.from_product([modalities, readers], names=["modality", "reader"])
    wide = wide.reindex(index=full, columns=cases)
    holes = wide.isna()
    if holes.to_numpy().any():
        (mod, rdr), row = next((k, v) for k, v in holes.iterrows() if v.any())
        case = row.index[row.to_numpy()][0]
        n_missing = int(row.sum())
        raise InputError(
            f"{source}: reader {rdr!r} has no score for case {case!r} in modality {mod!r} "
            f"({n_missing} case(s) missing for this reader and modality); every reader must "
            "score every case in every modality"
        )
    scores = wide.to_numpy(dtype=float).reshape(len(modalities), len(readers), len(cases))
    return ReaderStudy(modalities, readers, cases, truth, scores)


def model_scores(
    df: pd.DataFrame, *, cases: list[str], source: str = "input"
) -> dict[str, np.ndarray]:
    """Scores of the reader named ``model`` (an algorithm) per modality it scored, case-aligned.

    The model may skip whole modalities (it often reads only one), but within a modality it
    must score every case of the study.
    """
    rows = df[df["reader"] == MODEL_READER]
    out: dict[str, np.ndarray] = {}
    for mod, grp in rows.groupby("modality", sort=False):
        s = grp.set_index("case")["score"].reindex(cases)
        if s.isna().any():
            case = s.index[s.isna().to_numpy()][0]
            raise InputError(
                f"{source}: reader 'model' has no score for case {case!r} in modality {mod!r}; "
                "score every case or leave the modality out for the model"
            )
        extra = set(grp["case"]) - set(cases)
        if extra:
            raise InputError(
                f"{source}: reader 'model' scored case(s) {sorted(extra)[:3]} that no human "
                "reader scored; drop them or have the readers score them"
            )
        out[str(mod)] = s.to_numpy(dtype=float)
    return out
