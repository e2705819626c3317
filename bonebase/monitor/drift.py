"""Input drift of a site against the champion's training data, feature by feature.

The tests are the ones Evidently uses by default for small samples: the two-sample
Kolmogorov–Smirnov test for numbers and the chi-square test of the category counts for
categories (both from SciPy), a feature drifting when p < ``alpha``. Beside the p-value each
numeric feature has the size of the shift: the Wasserstein distance divided by the reference's
standard deviation (Evidently's measure for large samples). A site's drift score is the share
of its features that drift (Evidently's "dataset drift" share).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from bonebase.monitor.scoring import CATEGORICAL, NUMERIC

# Fewer values than this on either side: the feature is not tested (too few to tell).
MIN_VALUES = 5


def _numbers(rows: Sequence[dict], name: str) -> np.ndarray:
    vals = [r.get(name) for r in rows]
    return np.asarray([v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)],
                      dtype=float)


def _numeric(name: str, ref: np.ndarray, cur: np.ndarray, alpha: float) -> dict:
    out = {"feature": name, "kind": "numeric", "n_reference": len(ref), "n_current": len(cur),
           "test": "ks", "statistic": None, "p_value": None, "shift": None, "drifted": False,
           "reference_mean": float(ref.mean()) if len(ref) else None,
           "current_mean": float(cur.mean()) if len(cur) else None}
    if len(ref) < MIN_VALUES or len(cur) < MIN_VALUES:
        out["test"] = "too few values"
        return out
    if np.ptp(ref) == 0 and np.ptp(cur) == 0:
        out.update(statistic=0.0 if ref[0] == cur[0] else 1.0,
                   p_value=1.0 if ref[0] == cur[0] else 0.0)
    else:
        res = stats.ks_2samp(ref, cur)
        out.update(statistic=float(res.statistic), p_value=float(res.pvalue))
    scale = float(ref.std()) or 1.0
    out["shift"] = float(stats.wasserstein_distance(ref, cur)) / scale
    out["drifted"] = out["p_value"] < alpha
    return out


def _categorical(name: str, ref: list[str], cur: list[str], alpha: float) -> dict:
    cats = sorted(set(ref) | set(cur))
    r = np.asarray([ref.count(c) for c in cats], dtype=float)
    c = np.asarray([cur.count(k) for k in cats], dtype=float)
    out = {"feature": name, "kind": "categorical", "n_reference": len(ref), "n_current": len(cur),
           "test": "chi2", "statistic": None, "p_value": None, "shift": None, "drifted": False,
           "reference_share": {k: float(v / max(r.sum(), 1)) for k, v in zip(cats, r, strict=True)},
           "current_share": {k: float(v / max(c.sum(), 1)) for k, v in zip(cats, c, strict=True)}}
    if len(ref) < MIN_VALUES or len(cur) < MIN_VALUES:
        out["test"] = "too few values"
        return out
    if len(cats) == 1:
        out.update(statistic=0.0, p_value=1.0, shift=0.0)
        return out
    res = stats.chi2_contingency(np.vstack([r, c]))
    out.update(statistic=float(res.statistic), p_value=float(res.pvalue),
               # total variation distance between the two category mixes
               shift=float(0.5 * np.abs(r / r.sum() - c / c.sum()).sum()))
    out["drifted"] = out["p_value"] < alpha
    return out


def compare(reference: Sequence[dict], current: Sequence[dict], *, alpha: float = 0.05) -> dict:
    """Drift of ``current`` feature rows against ``reference`` ones (``features`` dicts of
    scored images): per feature and group the test, p-value, shift and verdict, and the
    share of tested features that drift."""
    features = []
    for group in ("clinical", "acquisition", "image", "output"):
        for name in NUMERIC.get(group, ()):
            f = _numeric(name, _numbers(reference, name), _numbers(current, name), alpha)
            features.append({**f, "group": group})
        for name in CATEGORICAL.get(group, ()):
            ref = [str(r[name]) for r in reference if r.get(name) not in (None, "")]
            cur = [str(r[name]) for r in current if r.get(name) not in (None, "")]
            features.append({**_categorical(name, ref, cur, alpha), "group": group})
    tested = [f for f in features if f["p_value"] is not None]
    drifted = [f["feature"] for f in tested if f["drifted"]]
    return {"alpha": alpha, "n_reference": len(reference), "n_current": len(current),
            "features": features, "tested": len(tested), "drifted": drifted,
            "share": len(drifted) / len(tested) if tested else None}


def histogram(reference: Sequence[dict], current: Sequence[dict], name: str,
              bins: int = 12) -> dict | None:
    """Shares of reference and current values in common bins (for charts); None if no values."""
    ref, cur = _numbers(reference, name), _numbers(current, name)
    both = np.concatenate([ref, cur])
    if both.size == 0:
        return None
    lo, hi = float(both.min()), float(both.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    def share(v):
        h, _ = np.histogram(v, edges)
        return (h / max(len(v), 1)).tolist()
    return {"edges": edges.tolist(), "reference": share(ref), "current": share(cur)}


__all__ = ["MIN_VALUES", "compare", "histogram"]
