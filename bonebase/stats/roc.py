"""ROC analysis as reported in radiology AI papers: AUC with DeLong or bootstrap CIs, paired
DeLong comparison, PR AUC, and operating points (Youden, fixed sensitivity, confusion metrics).

Conventions: ``y`` holds 1 for diseased (positive) and 0 for non-diseased cases; a higher score
means "more likely diseased"; a case is called positive when ``score >= threshold``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats
from sklearn import metrics

from bonebase.errors import InputError


class AucCI(NamedTuple):
    """An AUC with its standard error and a two-sided confidence interval."""

    auc: float
    lo: float
    hi: float
    se: float


class Comparison(NamedTuple):
    """A paired difference of two AUCs (a - b) with its test and confidence interval."""

    diff: float
    se: float
    z: float
    p: float
    ci: tuple[float, float]


def check_binary(y: object, *scores: object) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate labels (0/1, both present) and scores (finite, same length) and return arrays."""
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or y_arr.size == 0:
        raise InputError("y must be a non-empty 1-D sequence of 0/1 labels")
    if not np.isin(y_arr, (0, 1)).all():
        bad = y_arr[~np.isin(y_arr, (0, 1))][:3].tolist()
        raise InputError(f"y must contain only 0 and 1 (1 = diseased); found {bad}")
    y_arr = y_arr.astype(np.int8)
    if y_arr.min() == y_arr.max():
        raise InputError("y must contain both diseased (1) and non-diseased (0) cases for ROC/AUC")
    out = []
    for i, s in enumerate(scores):
        s_arr = np.asarray(s, dtype=float)
        if s_arr.shape != y_arr.shape:
            raise InputError(
                f"score set {i} has shape {s_arr.shape}, labels have {y_arr.shape}; "
                "give one score per case"
            )
        if not np.isfinite(s_arr).all():
            raise InputError(f"score set {i} contains NaN or infinite values; drop or fix them")
        out.append(s_arr)
    return y_arr, out


def auc(y: object, score: object) -> float:
    """Empirical (trapezoidal = Wilcoxon-Mann-Whitney) area under the ROC curve."""
    y_arr, (s,) = check_binary(y, score)
    return float(metrics.roc_auc_score(y_arr, s))


def placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong structural components for k score sets on the same cases.

    ``scores`` has shape (k, n). Returns ``(aucs (k,), v10 (k, m), v01 (k, n0))`` where
    ``v10[:, i]`` is the fraction of negatives ranked below positive i (ties count one half)
    and ``v01[:, j]`` the fraction of positives ranked above negative j. Uses midranks
    (Sun & Xu 2014), O(n log n).
    """
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tz = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    tx = stats.rankdata(pos, axis=1)
    ty = stats.rankdata(neg, axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def delong_covariance(y: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong (1988) covariance matrix for score sets read on the same cases.

    ``scores`` is one score vector (n,) or a matrix (k, n). Returns ``(aucs (k,), cov (k, k))``.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    y_arr, rows = check_binary(y, *s)
    aucs, v10, v01 = placements(y_arr, np.vstack(rows))
    m, n = v10.shape[1], v01.shape[1]
    # Sample covariances (ddof=1) of the structural components, as in DeLong et al. 1988 eq. (3).
    s10 = np.atleast_2d(np.cov(v10, ddof=1)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01, ddof=1)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


def _normal_ci(est: float, se: float, alpha: float) -> tuple[float, float]:
    z = stats.norm.ppf(1 - alpha / 2)
    return est - z * se, est + z * se


def delong_ci(y: object, score: object, alpha: float = 0.05) -> AucCI:
    """AUC with DeLong standard error and a normal (Wald) CI clipped to [0, 1]."""
    aucs, cov = delong_covariance(y, score)
    a, se = float(aucs[0]), float(np.sqrt(max(cov[0, 0], 0.0)))
    lo, hi = _normal_ci(a, se, alpha)
    return AucCI(a, max(lo, 0.0), min(hi, 1.0), se)


def delong_test(y: object, score_a: object, score_b: object, alpha: float = 0.05) -> Comparison:
    """Paired DeLong test of AUC(a) - AUC(b) for two scores on the same cases (two-sided)."""
    aucs, cov = delong_covariance(y, np.vstack([np.asarray(score_a), np.asarray(score_b)]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    if se == 0.0:
        # Identical rankings: no evidence of a difference (pROC reports the same).
        z, p = (0.0, 1.0) if diff == 0.0 else (float(np.sign(diff) * np.inf), 0.0)
    else:
        z = diff / se
        p = float(2 * stats.norm.sf(abs(z)))
    return Comparison(diff, se, z, p, _normal_ci(diff, se, alpha))


def bootstrap_auc_ci(
    y: object, score: object, *, n: int = 2000, seed: int = 0, alpha: float = 0.05
) -> AucCI:
    """Stratified percentile bootstrap CI for the AUC.

    Positives and negatives are resampled separately (keeping their counts), so every replicate
    has both classes. ``se`` is the standard deviation of the replicate AUCs.
    """
    if n < 1:
        raise InputError(f"bootstrap n must be >= 1, got {n}")
    y_arr, (s,) = check_binary(y, score)
    pos, neg = s[y_arr == 1], s[y_arr == 0]
    m, k = pos.size, neg.size
    rng = np.random.default_rng(seed)
    boot = np.empty(n)
    # Chunk the replicates so the (chunk, m + k) rank matrix stays around 4M elements.
    chunk = max(1, 4_000_000 // (m + k))
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        xs = pos[rng.integers(0, m, size=(b, m))]
        ys = neg[rng.integers(0, k, size=(b, k))]
        ranks = stats.rankdata(np.concatenate([xs, ys], axis=1), axis=1)
        boot[start : start + b] = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * k)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    est = float(metrics.roc_auc_score(y_arr, s))
    return AucCI(est, float(lo), float(hi), float(boot.std(ddof=1)) if n > 1 else 0.0)


def pr_auc(y: object, score: object) -> float:
    """Area under the precision-recall curve as average precision (step-wise, not interpolated).

    The trapezoidal PR area over-estimates with ties and sparse points, hence average precision.
    """
    y_arr, (s,) = check_binary(y, score)
    return float(metrics.average_precision_score(y_arr, s))


def _roc(y: object, score: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_arr, (s,) = check_binary(y, score)
    fpr, tpr, thr = metrics.roc_curve(y_arr, s, drop_intermediate=False)
    # sklearn prepends an +inf threshold (nothing called positive); it is not a usable cut-off.
    return fpr[1:], tpr[1:], thr[1:]


def youden_threshold(y: object, score: object) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 (highest one on ties)."""
    fpr, tpr, thr = _roc(y, score)
    return float(thr[int(np.argmax(tpr - fpr))])


def threshold_at_sensitivity(y: object, score: object, sensitivity: float) -> float:
    """Highest threshold whose sensitivity is at least ``sensitivity`` (so the best specificity)."""
    if not 0.0 <= sensitivity <= 1.0:
        raise InputError(f"sensitivity must lie in [0, 1], got {sensitivity}")
    _fpr, tpr, thr = _roc(y, score)
    # tpr is non-decreasing as the threshold falls; the last entry reaches 1.0.
    idx = int(np.searchsorted(tpr, sensitivity - 1e-12, side="left"))
    return float(thr[min(idx, thr.size - 1)])


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def confusion_metrics(y: object, score: object, threshold: float) -> dict[str, float]:
    """Counts and rates at ``score >= threshold``: tp fp tn fn sensitivity specificity ppv npv
    accuracy. A rate whose denominator is zero (e.g. no positive calls) is NaN, not an error."""
    y_arr = np.asarray(y)
    s = np.asarray(score, dtype=float)
    if y_arr.shape != s.shape or y_arr.ndim != 1:
        raise InputError(f"y {y_arr.shape} and score {s.shape} must be 1-D of the same length")
    if not np.isin(y_arr, (0, 1)).all():
        raise InputError("y must contain only 0 and 1 (1 = diseased)")
    truth = y_arr == 1
    pred = s >= threshold
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    tn = int(np.sum(~pred & ~truth))
    fn = int(np.sum(~pred & truth))
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
    }
