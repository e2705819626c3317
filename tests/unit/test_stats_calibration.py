"""Calibration: reliability curve against scikit-learn, ECE/Brier by hand, temperature recovery."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from sklearn.calibration import calibration_curve

from bonebase.errors import InputError
from bonebase.stats import calibration as cal


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_matches_sklearn(strategy):
    rng = np.random.default_rng(0)
    p = rng.beta(2, 5, 500)
    y = (rng.random(500) < p).astype(int)
    curve = cal.reliability_curve(y, p, n_bins=8, strategy=strategy)
    frac, mean = calibration_curve(y, p, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(curve.fraction_positive, frac, atol=1e-12)
    np.testing.assert_allclose(curve.mean_predicted, mean, atol=1e-12)
    assert curve.counts.sum() == 500
    assert len(curve.edges) == 9


def test_ece_and_brier_by_hand():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.8, 0.8, 0.8])
    # one bin: observed 0.5 vs predicted 0.8
    assert cal.expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.3)
    assert cal.brier_score(y, p) == pytest.approx((0.04 + 0.64 + 0.04 + 0.64) / 4)
    y2 = np.array([0, 0, 1, 1])
    p2 = np.array([0.1, 0.1, 0.9, 0.7])
    # bins: [0.1, 0.1] observed 0 -> |0 - 0.1| weight .5; 0.9 -> |1-.9| .25; 0.7 -> |1-.7| .25
    assert cal.expected_calibration_error(y2, p2, n_bins=10) == pytest.approx(
        0.5 * 0.1 + 0.25 * 0.1 + 0.25 * 0.3
    )


def test_ece_small_for_calibrated_large_for_overconfident():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    assert cal.expected_calibration_error(y, p) < 0.02
    sharp = special.expit(3 * special.logit(np.clip(p, 1e-6, 1 - 1e-6)))
    assert cal.expected_calibration_error(y, sharp) > 0.1


def test_temperature_recovers_overconfidence_binary():
    rng = np.random.default_rng(2)
    z_true = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < special.expit(z_true)).astype(int)
    t = cal.fit_temperature(3.0 * z_true, y)  # a model three times too confident
    assert t == pytest.approx(3.0, rel=0.08)
    probs = cal.apply_temperature(3.0 * z_true, t)
    assert cal.expected_calibration_error(y, probs) < cal.expected_calibration_error(
        y, special.expit(3.0 * z_true)
    )
    np.testing.assert_allclose(cal.apply_temperature(z_true, 1.0), special.expit(z_true))


def test_temperature_multiclass():
    rng = np.random.default_rng(3)
    z_true = rng.normal(0, 1.5, (8000, 4))
    p = special.softmax(z_true, axis=1)
    y = np.array([rng.choice(4, p=row) for row in p])
    t = cal.fit_temperature(0.5 * z_true, y)  # under-confident: T should be ~0.5
    assert t == pytest.approx(0.5, rel=0.1)
    out = cal.apply_temperature(0.5 * z_true, t)
    assert out.shape == (8000, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: cal.brier_score([0, 1], [0.2, 1.3]), "in \\[0, 1\\]"),
        (lambda: cal.reliability_curve([0, 1], [0.2, 0.3], strategy="kmeans"), "strategy"),
        (lambda: cal.fit_temperature([0.1, 0.2], [0, 2]), "labels must lie"),
        (lambda: cal.fit_temperature(np.zeros((3, 2)), [0, 1]), "one label per row"),
        (lambda: cal.apply_temperature([0.1], 0.0), "temperature must be > 0"),
    ],
)
def test_bad_input(call, msg):
    with pytest.raises(InputError, match=msg):
        call()
