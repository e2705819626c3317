"""Patient-grouped, stratified, locked train/val/test/external splits.

Rules: a patient (site, pseudonym) is in exactly one split; every patient of an external site
is ``external``; the others are spread over train/val/test so that each (site, class) stratum
gets the requested fractions; and a patient assigned once keeps the split for good (the
previous assignment is passed in), so successive dataset versions and models are compared on
the same test patients. New patients fill each stratum's shortfall of test, then val, then
train, in an order given by a keyed hash of the patient: the assignment of one patient does
not depend on which other patients arrive with it, nor on row order.

A public dataset without patient ids (BTXRD) arrives with pseudo-patients (the importer groups
consecutive views of one centre, age, sex and site), so its views of one patient stay together
too; its centres are sites (BTXRD1-3), and ``external_sites`` holds one out by its code. The
stratum of a patient is its highest class (a patient with a normal and a tumour view counts as
tumour; for ``normal_benign_malignant`` malignant > benign > normal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bonebase.errors import InputError

SPLITS = ("train", "val", "test", "external")
COLUMNS = ["patient_id", "site", "split"]


def _order_key(seed: int, site: str, patient: str) -> str:
    return hashlib.sha256(f"{seed}\x00{site}\x00{patient}".encode()).hexdigest()


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise InputError(f"split.{name} is {value!r}; use a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise InputError(
            "split.val_fraction + split.test_fraction must be below 1 (train gets the rest)"
        )


def _patients(labels: pd.DataFrame, stratify: str) -> pd.DataFrame:
    missing = {"patient_id", "site", stratify} - set(labels.columns)
    if missing:
        raise InputError(
            f"labels lack column(s) {', '.join(sorted(missing))}; "
            "export the dataset again (labels.csv of the export contract)"
        )
    frame = labels[["site", "patient_id", stratify]].astype(str)
    # A patient with several cases is positive when any case is: keeps strata of patients.
    return (
        frame.groupby(["site", "patient_id"], sort=True)[stratify]
        .max()
        .rename("stratum")
        .reset_index()
    )


def _check_previous(previous: pd.DataFrame) -> pd.DataFrame:
    missing = set(COLUMNS) - set(previous.columns)
    if missing:
        raise InputError(
            f"the previous split assignment lacks column(s) {', '.join(sorted(missing))};"
            " it must have patient_id, site, split"
        )
    prev = previous[COLUMNS].astype(str)
    bad = prev.loc[~prev["split"].isin(SPLITS)]
    if len(bad):
        raise InputError(
            f"previous split assignment row {bad.index[0] + 2}: split "
            f"{bad['split'].iloc[0]!r} is not one of {', '.join(SPLITS)}"
        )
    dup = prev.duplicated(["site", "patient_id"])
    if dup.any():
        row = prev.loc[dup].iloc[0]
        raise InputError(
            f"previous split assignment lists patient {row['patient_id']} of site "
            f"{row['site']} twice; keep one row per patient"
        )
    return prev


def assign_splits(
    labels: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    external_sites: Iterable[str] = (),
    stratify: str = "benign_vs_malignant",
) -> pd.DataFrame:
    """Split assignment (patient_id, site, split) for every patient of ``labels`` and of
    ``previous``, sorted by site then patient; see the module doc for the rules."""
    _check_fractions(val_fraction, test_fraction)
    external = set(external_sites)
    patients = _patients(labels, stratify)
    prev = _check_previous(previous) if previous is not None else pd.DataFrame(columns=COLUMNS)
    merged = patients.merge(prev, on=["site", "patient_id"], how="outer")
    merged["stratum"] = merged["stratum"].fillna("")
    for row in merged.dropna(subset=["split"]).itertuples():
        if (row.split == "external") != (row.site in external):
            raise InputError(
                f"patient {row.patient_id} of site {row.site} is locked in split {row.split!r} but "
                f"split.external_sites now says otherwise; a locked split cannot move patients: "
                "restore external_sites, or start a new split lock deliberately "
                "(remove splits/assignments.csv)"
            )
    new = merged["split"].isna()
    merged.loc[new & merged["site"].isin(external), "split"] = "external"
    internal = merged.loc[~merged["site"].isin(external)]
    for _, group in internal.groupby(["site", "stratum"], sort=True):
        total = len(group)
        have = dict(group["split"].value_counts())
        quota = {"test": round(total * test_fraction), "val": round(total * val_fraction)}
        todo = group.loc[group["split"].isna()]
        order = sorted(
            todo.index,
            key=lambda i: _order_key(seed, merged.at[i, "site"], merged.at[i, "patient_id"]),
        )
        for index in order:
            split = next((s for s in ("test", "val") if have.get(s, 0) < quota[s]), "train")
            merged.at[index, "split"] = split
            have[split] = have.get(split, 0) + 1
    out = merged[COLUMNS].sort_values(["site", "patient_id"], kind="stable")
    return out.reset_index(drop=True)


def read_assignments(path: Path) -> pd.DataFrame | None:
    """A stored split assignment (CSV), or None when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_assignments(frame: pd.DataFrame, path: Path, *, only: pd.DataFrame | None = None) -> None:
    """Write an assignment as CSV ('\\n' line ends); ``only``: keep the patients of these labels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if only is not None:
        keys = set(zip(only["site"].astype(str), only["patient_id"].astype(str), strict=True))
        mask = [k in keys for k in zip(frame["site"], frame["patient_id"], strict=True)]
        frame = frame.loc[mask]
    # Replace, never rewrite in place: DVC may have linked the old file to its cache.
    tmp = path.with_name(path.name + ".tmp")
    frame[COLUMNS].to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


__all__ = ["SPLITS", "assign_splits", "read_assignments", "write_assignments"]
