"""The shortcut probe: what a linear classifier can read from the network's features.

If the penultimate features predict the hospital or the patient's age band as well as (or better
than) the diagnosis, the network may score through those instead of the lesion: a site's case
mix and its scanner, or skeletal maturity (open physes) that goes with age and hence with the
diagnosis. The probe is a standardised logistic regression, cross-validated with folds grouped by
case (views of one case never sit on both sides); AUC is one-vs-rest, macro-averaged for more
than two classes. ``label_from`` gives, for comparison, how well the site or the age band alone
predicts the label (the shortcut's ceiling through that variable).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TIE = 0.02  # AUCs this close count as "as well as" (two fits of one partition differ by bits)


def probe_auc(x: np.ndarray, target: np.ndarray, groups: np.ndarray, *, seed: int = 7,
              folds: int = 5) -> float:
    """Cross-validated AUC of a linear probe predicting ``target`` from ``x`` (NaN when the
    target has one value, or a class sits in fewer groups than two folds need).

    A fold whose training part holds one class only (grouping can force it when a class is
    rare) is left out, and its test rows with it: the AUC is over the rows a probe scored, NaN
    when those hold one class."""
    target, groups = np.asarray(target).astype(str), np.asarray(groups)
    classes = np.unique(target)
    # Folds are grouped: a class can be split only over as many folds as the groups holding it.
    spread = [len(np.unique(groups[target == c])) for c in classes]
    k = min([folds, len(np.unique(groups)), *spread])
    if len(classes) < 2 or k < 2:
        return float("nan")
    prob = np.zeros((len(target), len(classes)))
    scored = np.zeros(len(target), dtype=bool)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    with warnings.catch_warnings():  # a fold missing a rare class, or slow convergence
        warnings.simplefilter("ignore")
        for tr, te in cv.split(x, target, groups):
            if len(np.unique(target[tr])) < 2:
                continue
            model.fit(x[tr], target[tr])
            cols = np.searchsorted(classes, model.classes_)
            prob[np.ix_(te, cols)] = model.predict_proba(x[te])
            scored[te] = True
    target, prob = target[scored], prob[scored]
    present = np.unique(target)
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(target == classes[1], prob[:, 1]))
    if len(present) == 2:  # a rare class lost with its fold: the two left, one against the other
        col = int(np.searchsorted(classes, present[1]))
        return float(roc_auc_score(target == present[1], prob[:, col]))
    keep = np.searchsorted(classes, present)
    scores = prob[:, keep] / np.clip(prob[:, keep].sum(axis=1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(target, scores, multi_class="ovr", average="macro",
                               labels=present))


def _one_hot_auc(variable: pd.Series, y: np.ndarray) -> float:
    """AUC of the label's share per value of ``variable`` as a score (in-sample)."""
    if len(np.unique(y)) < 2:
        return float("nan")
    rate = pd.Series(y).groupby(variable.to_numpy()).transform("mean").to_numpy()
    return float(roc_auc_score(y, rate))


def shortcut_probe(features: np.ndarray, frame: pd.DataFrame, *, seed: int = 7) -> dict:
    """Probe AUCs for label, site and age band on ``features`` (one row per ``frame`` row, which
    holds y, site, age_band and case_id); ``suspect`` lists site or age band when the features
    read it at least as well as the label (within ``TIE``) while it also predicts the label
    (AUC >= 0.6 from that variable alone)."""
    groups = (frame["site"].astype(str) + "/" + frame["case_id"].astype(str)).to_numpy()
    y = frame["y"].to_numpy()
    out = {"n": int(len(frame))}
    for name, target in (("label", y), ("site", frame["site"]), ("age_band", frame["age_band"])):
        out[f"probe_auc_{name}"] = probe_auc(features, np.asarray(target), groups, seed=seed)
        if name != "label":
            out[f"label_from_{name}_auc"] = _one_hot_auc(pd.Series(np.asarray(target)), y)
    label = out["probe_auc_label"]
    flags = [
        name
        for name in ("site", "age_band")
        if np.isfinite(out[f"probe_auc_{name}"])
        and np.isfinite(label)
        and out[f"probe_auc_{name}"] >= label - TIE
        and (out[f"label_from_{name}_auc"] or 0.5) >= 0.6
    ]
    out["suspect"] = flags
    return out


__all__ = ["probe_auc", "shortcut_probe"]
