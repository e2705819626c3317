"""The champion's performance on scored cases: per site, per site and month, with CIs and n.

AUC with its DeLong 95% CI (bonebase.stats.roc), sensitivity and specificity at the model's
locked threshold with Wilson 95% CIs (SciPy's binomtest), calibration as the expected
calibration error and the Brier score (bonebase.stats.calibration), the mean predicted
probability beside the observed positive rate. A group without both classes has no AUC; a
group with no case has no figures at all, only ``n = 0``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from scipy.stats import binomtest

from bonebase.stats.calibration import brier_score, expected_calibration_error
from bonebase.stats.roc import delong_ci


def _wilson(k: int, n: int) -> dict | None:
    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"value": k / n, "lo": float(ci.low), "hi": float(ci.high)}


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def figures(y: Iterable[int], prob: Iterable[float], threshold: float) -> dict:
    """n, positives, AUC (DeLong CI), sensitivity/specificity at ``threshold`` (Wilson CIs),
    ECE, Brier, mean predicted and observed positive rate for one group of cases."""
    y_arr = np.asarray(list(y), dtype=int)
    p = np.asarray(list(prob), dtype=float)
    n, pos = len(y_arr), int(y_arr.sum())
    out: dict = {"n": n, "positives": pos, "auc": None, "sensitivity": None,
                 "specificity": None, "ece": None, "brier": None, "mean_predicted": None,
                 "observed_rate": None}
    if n == 0:
        return out
    called = p >= threshold
    out["sensitivity"] = _wilson(int(np.sum(called & (y_arr == 1))), pos)
    out["specificity"] = _wilson(int(np.sum(~called & (y_arr == 0))), n - pos)
    out["ece"] = _finite(expected_calibration_error(y_arr, p, n_bins=min(10, max(2, n // 5))))
    out["brier"] = _finite(brier_score(y_arr, p))
    out["mean_predicted"], out["observed_rate"] = float(p.mean()), pos / n
    if 0 < pos < n:
        ci = delong_ci(y_arr, p)
        out["auc"] = {"value": float(ci.auc), "lo": float(ci.lo), "hi": float(ci.hi),
                      "se": float(ci.se)}
    return out


def by_site(scores: Iterable[dict], threshold: float, *, monthly: bool = True) -> dict:
    """Figures per site (``{site: {"all": figures, "months": {"2026-12": figures}}}``) of scored
    rows that carry a label and a probability (rows of :func:`bonebase.monitor.db.scores`)."""
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in scores:
        if r["label"] is None or r["probability"] is None:
            continue
        month = r["month"].strftime("%Y-%m")
        for key in ("all", month) if monthly else ("all",):
            groups[r["site"]][key].append((r["label"], r["probability"]))
    out: dict = {}
    for site in sorted(groups):
        per = {key: figures([a for a, _ in v], [b for _, b in v], threshold)
               for key, v in groups[site].items()}
        out[site] = {"all": per.pop("all"), "months": dict(sorted(per.items()))}
    return out


def ask_the_model_rows(predictions: Iterable[dict], *, task: str, positive_class: str,
                       intermediate_as: str = "benign") -> list[dict]:
    """The web's "Ask the model" answers (rows of :func:`bonebase.monitor.db.ask_the_model`) as
    scored rows for :func:`by_site`: the case's class for ``task`` and P(``positive_class``)."""
    from bonebase.monitor.scoring import case_label

    rows = []
    for p in predictions:
        if p["task"] not in (None, task):
            continue
        prob = (p["probabilities"] or {}).get(positive_class)
        rows.append({"site": p["site"], "month": p["month"],
                     "label": case_label(task, p["diagnosis_code"], p["location_code"],
                                         intermediate_as),
                     "probability": None if prob is None else float(prob)})
    return rows


__all__ = ["ask_the_model_rows", "by_site", "figures"]
