"""The release gate and head-to-head model comparison.

``check_gate(metrics, policy=..., comparison=...)`` applies a release policy (params.yaml
``release:``) to a candidate's evaluation metrics (``reports/metrics.json``) and, when a champion
is deployed, to a comparison against it. ``compare_predictors`` scores two models on the same
locked test and external cases of ``data/`` and tests the AUC difference with DeLong.

Policy keys (all optional; an absent key is not checked):
``auc_ci_low_min`` (lower DeLong 95% CI bound of the AUC on ``test`` and ``external``),
``site_auc_min`` (AUC on every external site), ``ece_max`` (calibration error on ``test``),
``min_test_cases``, ``noninferiority_margin`` (candidate - champion AUC: lower CI bound must
exceed -margin on the same cases), ``pointing_game_min`` and ``weighting_game_min`` (the heat
maps on the external set, or on test without one: share of maps peaking inside the lesion, and
share of their energy inside it; see bonebase/model/explain.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bonebase.errors import InputError
from bonebase.model.data import load_frame, read_png
from bonebase.model.inference import Predictor
from bonebase.stats import auc, delong_ci, delong_test

POLICY_KEYS = (
    "auc_ci_low_min",
    "site_auc_min",
    "ece_max",
    "min_test_cases",
    "noninferiority_margin",
    "pointing_game_min",
    "weighting_game_min",
)
EVAL_SPLITS = ("test", "external")


def _check(name: str, value, limit, passed: bool, detail: str) -> dict:
    return {"check": name, "value": value, "limit": limit, "passed": passed, "detail": detail}


def check_gate(metrics: dict, *, policy: dict, comparison: dict | None = None) -> dict:
    """Apply ``policy`` to ``metrics``; returns ``{"passed": bool, "checks": [...]}``.

    ``comparison`` is :func:`compare_predictors` output (candidate = ``a``, champion = ``b``)
    and is needed when the policy has ``noninferiority_margin`` and a champion exists; pass
    ``{"champion": None}`` when no model is deployed for the task.
    """
    unknown = set(policy) - set(POLICY_KEYS)
    if unknown:
        raise InputError(
            f"release policy: unknown keys {sorted(unknown)}; known: {', '.join(POLICY_KEYS)}"
        )
    checks: list[dict] = []
    if "per_class" in metrics and not isinstance(metrics.get("test"), dict):
        # A model of more than two classes (normal_benign_malignant) has per-class figures only.
        detail = ("the release gate is defined for two-class tasks; judge the per-class section "
                  "of the report and approve with --override and a reason")
        return {"passed": False, "checks": [_check("two_class_task", None, None, False, detail)],
                "policy": dict(policy)}
    if "auc_ci_low_min" in policy:
        limit = float(policy["auc_ci_low_min"])
        sets = [s for s in EVAL_SPLITS if isinstance(metrics.get(s), dict)]
        if not sets:
            checks.append(_check("auc_ci_low", None, limit, False, "no test/external metrics"))
        for s in sets:
            lo = metrics[s].get("auc_delong_lo")
            ok = lo is not None and lo >= limit
            checks.append(_check(f"auc_ci_low[{s}]", lo, limit, ok, "DeLong 95% CI lower bound"))
    if "site_auc_min" in policy:
        limit = float(policy["site_auc_min"])
        for key in sorted(k for k in metrics if k.startswith("external_")):
            a = metrics[key].get("auc") if isinstance(metrics[key], dict) else None
            if a is None:
                # One class only at that site: no AUC to judge, reported but not blocking.
                checks.append(_check(f"site_auc[{key[9:]}]", None, limit, True, "AUC undefined"))
            else:
                checks.append(_check(f"site_auc[{key[9:]}]", a, limit, a >= limit, "site AUC"))
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    if "ece_max" in policy:
        limit, ece = float(policy["ece_max"]), test.get("ece")
        ok = ece is not None and ece <= limit
        checks.append(_check("ece[test]", ece, limit, ok, "expected calibration error"))
    if "min_test_cases" in policy:
        limit, n = int(policy["min_test_cases"]), int(test.get("n_cases", 0))
        checks.append(_check("n_cases[test]", n, limit, n >= limit, "locked test cases"))
    checks += _explanation_checks(metrics, policy)
    if "noninferiority_margin" in policy:
        margin = float(policy["noninferiority_margin"])
        if comparison is not None and comparison.get("champion") is None:
            checks.append(_check("noninferiority", None, -margin, True, "no deployed champion"))
        elif comparison is None or "delong" not in comparison:
            checks.append(
                _check(
                    "noninferiority",
                    None,
                    -margin,
                    False,
                    "a champion is deployed: compare against it on data/ (--data) first",
                )
            )
        else:
            lo = comparison["delong"]["ci_low"]
            checks.append(
                _check(
                    "noninferiority",
                    lo,
                    -margin,
                    lo > -margin,
                    f"AUC(candidate) - AUC(champion #{comparison['champion']}) lower 95% CI",
                )
            )
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "policy": dict(policy)}


def _explanation_checks(metrics: dict, policy: dict) -> list[dict]:
    """The heat maps must point at the lesion: pointing and weighting game minima."""
    e = metrics.get("explanation") or {}
    where = "external" if e.get("external") else "test"
    scores = (e.get(where) or {}).get("all") or {}
    how = f"{e.get('method')} on {e.get('layer')}, {where} set, n={scores.get('n', 0)}"
    checks = []
    for key, label in (("pointing_game", "map peak inside the lesion"),
                       ("weighting_game", "map energy inside the lesion")):
        if f"{key}_min" not in policy:
            continue
        limit, value = float(policy[f"{key}_min"]), scores.get(key)
        if value is None:
            detail = "no explanation scores in metrics.json: re-run the evaluate stage"
            checks.append(_check(key, None, limit, False, detail))
        else:
            checks.append(_check(key, value, limit, value >= limit, f"{label} ({how})"))
    return checks


def case_scores(predictor: Predictor, frame: pd.DataFrame, data_dir: Path, *, batch: int = 64):
    """P(class 1) per case (mean log-odds over the case's images, as training scores cases)."""
    odds = np.empty(len(frame))
    for start in range(0, len(frame), batch):
        part = frame.iloc[start : start + batch]
        x = np.stack([predictor.preprocess(read_png(data_dir / rel)) for rel in part["image"]])
        p = np.clip(predictor.forward(x), 1e-12, 1.0)
        odds[start : start + len(part)] = np.log(p[:, 1]) - np.log(p[:, 0])
    per = frame[["site", "case_id", "y"]].assign(odds=odds)
    cases = per.groupby(["site", "case_id"], sort=True).agg(y=("y", "first"), odds=("odds", "mean"))
    cases["prob"] = 1.0 / (1.0 + np.exp(-cases["odds"]))
    return cases.reset_index()


def compare_predictors(
    a: Predictor,
    b: Predictor,
    *,
    data_dir: str | Path,
    labels: tuple[str, str] = ("a", "b"),
) -> dict:
    """AUCs with DeLong CIs of ``a`` and ``b`` on the same test + external cases of
    ``data_dir``, the paired DeLong test of AUC(a) - AUC(b), and a per-site table."""
    if a.checkpoint.task != b.checkpoint.task:
        raise InputError(
            f"cannot compare a {a.checkpoint.task} model with a {b.checkpoint.task} model"
        )
    data_dir = Path(data_dir)
    frame = load_frame(data_dir, task=a.checkpoint.task)
    frame = frame[frame["split"].isin(EVAL_SPLITS)].reset_index(drop=True)
    if frame.empty:
        raise InputError(f"{data_dir}: no test or external rows in split.csv to compare on")
    sa, sb = case_scores(a, frame, data_dir), case_scores(b, frame, data_dir)
    y = sa["y"].to_numpy()
    if len(np.unique(y)) < 2:
        raise InputError(f"{data_dir}: test + external cases hold one class only; cannot compare")
    ca, cb = delong_ci(y, sa["prob"]), delong_ci(y, sb["prob"])
    test = delong_test(y, sa["prob"], sb["prob"])
    sites = []
    for site, idx in sa.groupby("site", sort=True).groups.items():
        ys = y[idx]
        two = len(np.unique(ys)) == 2
        sites.append(
            {
                "site": site,
                "n_cases": len(idx),
                "n_positive": int(ys.sum()),
                f"auc_{labels[0]}": auc(ys, sa["prob"][idx]) if two else None,
                f"auc_{labels[1]}": auc(ys, sb["prob"][idx]) if two else None,
            }
        )
    return {
        "n_cases": len(y),
        "n_positive": int(y.sum()),
        labels[0]: {"auc": ca.auc, "ci_low": ca.lo, "ci_high": ca.hi},
        labels[1]: {"auc": cb.auc, "ci_low": cb.lo, "ci_high": cb.hi},
        "delong": {
            "diff": test.diff,
            "ci_low": float(test.ci[0]),
            "ci_high": float(test.ci[1]),
            "p": test.p,
        },
        "sites": sites,
    }


__all__ = ["POLICY_KEYS", "case_scores", "check_gate", "compare_predictors"]
