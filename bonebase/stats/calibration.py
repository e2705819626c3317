"""Calibration of predicted probabilities: reliability curve, ECE, Brier score, and temperature
scaling (Guo et al. 2017) fitted on validation logits.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from scipy import optimize, special
from sklearn import metrics

from bonebase.errors import InputError

Strategy = Literal["uniform", "quantile"]


class ReliabilityCurve(NamedTuple):
    """Per-bin calibration summary; empty bins are dropped (their edges stay in ``edges``)."""

    edges: np.ndarray  # (n_bins + 1,) bin edges over [0, 1]
    mean_predicted: np.ndarray  # mean predicted probability per non-empty bin
    fraction_positive: np.ndarray  # observed fraction of positives per non-empty bin
    counts: np.ndarray  # cases per non-empty bin


def _check_probs(y: object, prob: object) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y)
    p = np.asarray(prob, dtype=float)
    if y_arr.ndim != 1 or y_arr.shape != p.shape or y_arr.size == 0:
        raise InputError(f"y {y_arr.shape} and prob {p.shape} must be 1-D of the same length")
    if not np.isin(y_arr, (0, 1)).all():
        raise InputError("y must contain only 0 and 1 (1 = diseased)")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise InputError("prob must be probabilities in [0, 1] (apply a sigmoid to logits first)")
    return y_arr.astype(float), p


def _edges(p: np.ndarray, n_bins: int, strategy: Strategy) -> np.ndarray:
    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
        return edges
    raise InputError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def reliability_curve(
    y: object, prob: object, *, n_bins: int = 10, strategy: Strategy = "uniform"
) -> ReliabilityCurve:
    """Reliability diagram data: bins of predicted probability vs the observed positive rate.

    Bins are right-closed except the first (a probability of exactly 0 goes in bin 0), matching
    ``sklearn.calibration.calibration_curve``; unlike it, per-bin counts are returned (ECE needs
    them).
    """
    y_arr, p = _check_probs(y, prob)
    edges = _edges(p, n_bins, strategy)
    # Quantile edges may repeat with tied probabilities; searchsorted on the inner edges then
    # leaves the duplicate bins empty, which are dropped below.
    idx = np.searchsorted(edges[1:-1], p, side="left")
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y_arr, minlength=n_bins)
    keep = counts > 0
    return ReliabilityCurve(
        edges, sum_p[keep] / counts[keep], sum_y[keep] / counts[keep], counts[keep]
    )


def expected_calibration_error(
    y: object, prob: object, *, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """ECE: count-weighted mean |observed rate - mean predicted probability| over bins."""
    curve = reliability_curve(y, prob, n_bins=n_bins, strategy=strategy)
    w = curve.counts / curve.counts.sum()
    return float(np.sum(w * np.abs(curve.fraction_positive - curve.mean_predicted)))


def brier_score(y: object, prob: object) -> float:
    """Mean squared difference between predicted probability and outcome (lower is better)."""
    y_arr, p = _check_probs(y, prob)
    return float(metrics.brier_score_loss(y_arr, p))


def _check_logits(logits: object, y: object | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    z = np.asarray(logits, dtype=float)
    if z.ndim not in (1, 2) or z.shape[0] == 0:
        raise InputError(f"logits must be (n,) binary or (n, classes) logits, got {z.shape}")
    if not np.isfinite(z).all():
        raise InputError("logits contain NaN or infinite values")
    if y is None:
        return z, None
    y_arr = np.asarray(y)
    if y_arr.shape != (z.shape[0],):
        raise InputError(f"y must have one label per row of logits: {y_arr.shape} vs {z.shape}")
    n_classes = 2 if z.ndim == 1 else z.shape[1]
    if not np.issubdtype(y_arr.dtype, np.integer) and not np.all(np.mod(y_arr, 1) == 0):
        raise InputError("y must hold integer class labels")
    y_arr = y_arr.astype(int)
    if y_arr.min() < 0 or y_arr.max() >= n_classes:
        raise InputError(f"y labels must lie in 0..{n_classes - 1} for logits of shape {z.shape}")
    return z, y_arr


def apply_temperature(logits: object, temperature: float) -> np.ndarray:
    """Probabilities from logits divided by ``temperature``: sigmoid for (n,), softmax for (n, k).

    For (n,) logits the result is P(class 1); for (n, k) it is the (n, k) probability matrix.
    """
    if not temperature > 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    z, _ = _check_logits(logits)
    if z.ndim == 1:
        return special.expit(z / temperature)
    return special.softmax(z / temperature, axis=1)


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    zt = z / temperature
    if z.ndim == 1:
        # log(1 + e^{-z}) for y = 1 and log(1 + e^{z}) for y = 0, computed stably.
        return float(np.mean(np.logaddexp(0.0, np.where(y == 1, -zt, zt))))
    return float(np.mean(special.logsumexp(zt, axis=1) - zt[np.arange(len(y)), y]))


def fit_temperature(logits: object, y: object) -> float:
    """Temperature T > 0 minimising the validation negative log-likelihood of softmax(z / T).

    Fit on a validation split, never on the test set. T > 1 softens over-confident models.
    """
    z, y_arr = _check_logits(logits, y)
    assert y_arr is not None
    # Optimise log T so the search is symmetric between sharpening and softening.
    res = optimize.minimize_scalar(
        lambda log_t: _nll(z, y_arr, float(np.exp(log_t))),
        bounds=(np.log(1e-2), np.log(1e2)),
        method="bounded",
        options={"xatol": 1e-8},
    )
    return float(np.exp(res.x))
