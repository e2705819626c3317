"""Split assignment: patient grouping, stratification, external sites, and the lock."""

from __future__ import annotations

import pandas as pd
import pytest

from bonebase.dataset.split import assign_splits, read_assignments, write_assignments
from bonebase.errors import InputError

ARGS = {"seed": 7, "val_fraction": 0.15, "test_fraction": 0.15}


def _labels(sites=("HX", "BJ1", "BOS"), patients=40, cases=2, start=0) -> pd.DataFrame:
    rows = []
    for site in sites:
        for p in range(start, start + patients):
            for c in range(cases):  # several images/cases per patient
                rows.append(
                    {
                        "site": site,
                        "patient_id": f"P{p:04d}",
                        "case_id": f"C{p}-{c}",
                        "benign_vs_malignant": str(p % 2),
                    }
                )
    return pd.DataFrame(rows)


def _key(frame):
    return dict(
        zip(zip(frame["site"], frame["patient_id"], strict=True), frame["split"], strict=True)
    )


def test_patients_grouped_and_stratified():
    labels = _labels()
    out = assign_splits(labels, None, external_sites=["BOS"], **ARGS)
    assert list(out.columns) == ["patient_id", "site", "split"]
    # one row per patient: a patient cannot be in two splits
    assert len(out) == 120 and not out.duplicated(["site", "patient_id"]).any()
    merged = labels.merge(out, on=["site", "patient_id"])
    assert merged.groupby(["site", "patient_id"])["split"].nunique().max() == 1
    # the same patient pseudonym at another site is another patient, split on its own
    assert set(out["site"]) == {"HX", "BJ1", "BOS"}
    for site in ("HX", "BJ1"):
        for cls in ("0", "1"):
            ids = {f"P{p:04d}" for p in range(40) if str(p % 2) == cls}
            part = out[(out["site"] == site) & out["patient_id"].isin(ids)]
            counts = part["split"].value_counts().to_dict()
            assert counts == {"train": 14, "test": 3, "val": 3}, (site, cls, counts)


def test_external_site_held_out_entirely():
    out = assign_splits(_labels(), None, external_sites=["BOS"], **ARGS)
    assert set(out.loc[out["site"] == "BOS", "split"]) == {"external"}
    assert "external" not in set(out.loc[out["site"] != "BOS", "split"])


def test_deterministic_and_order_independent():
    labels = _labels()
    a = assign_splits(labels, None, external_sites=["BOS"], **ARGS)
    b = assign_splits(labels.sample(frac=1, random_state=1), None, external_sites=["BOS"], **ARGS)
    pd.testing.assert_frame_equal(a, b)
    c = assign_splits(labels, None, external_sites=["BOS"], **{**ARGS, "seed": 8})
    assert _key(a) != _key(c)


def test_locked_patients_never_move(tmp_path):
    first = assign_splits(_labels(patients=30), None, external_sites=["BOS"], **ARGS)
    write_assignments(first, tmp_path / "a.csv")
    previous = read_assignments(tmp_path / "a.csv")
    # more patients arrive, one old patient's case was withdrawn, and a new site joins
    grown = _labels(sites=("HX", "BJ1", "BOS", "MUC"), patients=60)
    grown = grown[~((grown["site"] == "HX") & (grown["patient_id"] == "P0003"))]
    second = assign_splits(grown, previous, external_sites=["BOS"], **ARGS)
    old, new = _key(first), _key(second)
    assert all(new[k] == v for k, v in old.items())  # withdrawn ones stay locked too
    assert ("HX", "P0003") in new
    added = set(new) - set(old)
    assert len(added) == 4 * 60 - 3 * 30
    assert {new[k] for k in added if k[0] == "MUC"} == {"train", "val", "test"}
    # the new patients top strata up to the fractions (test of HX: 60 patients x 0.15 = 9)
    hx_test = [k for k, v in new.items() if k[0] == "HX" and v == "test"]
    assert 8 <= len(hx_test) <= 10


def test_changing_external_sites_under_a_lock_is_refused():
    first = assign_splits(_labels(), None, external_sites=["BOS"], **ARGS)
    with pytest.raises(InputError, match="external_sites"):
        assign_splits(_labels(), first, external_sites=["HX"], **ARGS)


def test_bad_inputs_name_the_fix():
    with pytest.raises(InputError, match="below 1"):
        assign_splits(_labels(), None, seed=1, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(InputError, match="patient_id"):
        assign_splits(pd.DataFrame({"site": ["HX"]}), None, **ARGS)
    bad = pd.DataFrame({"patient_id": ["P0000"], "site": ["HX"], "split": ["holdout"]})
    with pytest.raises(InputError, match="row 2"):
        assign_splits(_labels(), bad, **ARGS)


def test_write_only_keeps_current_patients(tmp_path):
    labels = _labels(patients=10)
    out = assign_splits(labels, None, external_sites=["BOS"], **ARGS)
    write_assignments(out, tmp_path / "s.csv", only=labels[labels["site"] == "HX"])
    written = pd.read_csv(tmp_path / "s.csv", dtype=str)
    assert set(written["site"]) == {"HX"} and len(written) == 10
    assert (tmp_path / "s.csv").read_bytes().count(b"\r") == 0
