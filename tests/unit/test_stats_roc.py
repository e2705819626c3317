"""ROC statistics: fast DeLong against the plain O(n^2) DeLong (1988) formula and against the
DeLong variances published for the Van Dyke data, bootstrap against DeLong, operating points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics

from bonebase.errors import InputError
from bonebase.stats import roc

DATA = Path(__file__).resolve().parents[1] / "data"


def plain_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong, DeLong & Clarke-Pearson (1988) written out: psi kernel, V10/V01, S10/m + S01/n."""
    x, z = scores[:, y == 1], scores[:, y == 0]
    m, n = x.shape[1], z.shape[1]
    # psi[k, i, j] = 1 if positive i outranks negative j, 1/2 on a tie, 0 otherwise.
    psi = (x[:, :, None] > z[:, None, :]) + 0.5 * (x[:, :, None] == z[:, None, :])
    aucs = psi.mean(axis=(1, 2))
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    k = len(aucs)
    s10 = np.array([[np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1) for b in range(k)]
                    for a in range(k)])  # fmt: skip
    s01 = np.array([[np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1) for b in range(k)]
                    for a in range(k)])  # fmt: skip
    return aucs, s10 / m + s01 / n


@pytest.fixture
def tied_scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 150)
    # Ordinal 1-5 ratings (many ties) correlated with truth, three readers/models.
    latent = y[None, :] * 1.2 + rng.normal(size=(3, 150))
    return y, np.digitize(latent, [-0.5, 0.3, 1.0, 1.8]).astype(float)


def test_auc_matches_sklearn_and_pairwise_count(tied_scores):
    y, s = tied_scores
    a, _ = plain_delong(y, s[:1])
    assert roc.auc(y, s[0]) == pytest.approx(a[0], abs=1e-12)
    assert roc.auc(y, s[0]) == pytest.approx(metrics.roc_auc_score(y, s[0]), abs=1e-12)


def test_fast_delong_equals_plain_formula(tied_scores):
    y, s = tied_scores
    aucs, cov = roc.delong_covariance(y, s)
    ref_aucs, ref_cov = plain_delong(y, s)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-12)
    # continuous scores (no ties) too
    rng = np.random.default_rng(3)
    yc = np.r_[np.ones(40, int), np.zeros(55, int)]
    sc = yc[None, :] + rng.normal(size=(2, 95))
    np.testing.assert_allclose(
        roc.delong_covariance(yc, sc)[1], plain_delong(yc, sc)[1], atol=1e-12
    )


def test_delong_ci_and_test_follow_the_covariance(tied_scores):
    y, s = tied_scores
    ref_aucs, ref_cov = plain_delong(y, s[:2])
    ci = roc.delong_ci(y, s[0])
    se = np.sqrt(ref_cov[0, 0])
    assert ci.auc == pytest.approx(ref_aucs[0])
    assert ci.se == pytest.approx(se)
    assert (ci.lo, ci.hi) == pytest.approx(
        (ref_aucs[0] - 1.959964 * se, ref_aucs[0] + 1.959964 * se)
    )

    cmp = roc.delong_test(y, s[0], s[1])
    d_se = np.sqrt(ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1])
    assert cmp.diff == pytest.approx(ref_aucs[0] - ref_aucs[1])
    assert cmp.se == pytest.approx(d_se)
    assert cmp.z == pytest.approx(cmp.diff / d_se)
    assert cmp.p == pytest.approx(2 * stats.norm.sf(abs(cmp.diff / d_se)))
    assert cmp.ci[0] < cmp.diff < cmp.ci[1]
    same = roc.delong_test(y, s[0], s[0])
    assert (same.diff, same.se, same.p) == (0.0, 0.0, 1.0)


def test_delong_matches_published_van_dyke_variances():
    # MRMCaov JSS manuscript, docs/jss/MRMCaov.tex (brian-j-smith/MRMCaov @ f1c63dc), summary of
    # mrmc(empirical_auc(...), cov = DeLong) on VanDyke: Error 0.0007921325 (mean DeLong
    # variance of the 10 reader x modality AUCs), Cov1 0.0003420090 (same reader, other modality).
    df = pd.read_csv(DATA / "vandyke.csv").sort_values(["modality", "reader", "case"])
    truth = df[(df.reader == 1) & (df.modality == 1)].truth.to_numpy()
    scores = df.score.to_numpy(float).reshape(10, 114)
    _, cov = roc.delong_covariance(truth, scores)
    assert np.mean(np.diag(cov)) == pytest.approx(0.0007921325, rel=1e-6)
    assert np.mean([cov[j, 5 + j] for j in range(5)]) == pytest.approx(0.0003420090, rel=1e-6)


def test_bootstrap_agrees_with_delong_on_large_sample():
    rng = np.random.default_rng(11)
    y = np.r_[np.ones(800, int), np.zeros(1200, int)]
    s = y + rng.normal(size=y.size)
    boot = roc.bootstrap_auc_ci(y, s, n=1000, seed=1)
    dl = roc.delong_ci(y, s)
    assert boot.auc == dl.auc
    assert boot.se == pytest.approx(dl.se, rel=0.1)
    assert boot.lo == pytest.approx(dl.lo, abs=0.005)
    assert boot.hi == pytest.approx(dl.hi, abs=0.005)
    assert roc.bootstrap_auc_ci(y, s, n=1000, seed=1) == boot  # seeded: reproducible


def test_bootstrap_coverage_is_near_nominal():
    # Binormal with unit variances and mean shift d: true AUC = Phi(d / sqrt(2)).
    d, true_auc = 1.0, stats.norm.cdf(1.0 / np.sqrt(2))
    rng = np.random.default_rng(2024)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    hits = 0
    for rep in range(200):
        s = y * d + rng.normal(size=y.size)
        ci = roc.bootstrap_auc_ci(y, s, n=400, seed=rep)
        hits += ci.lo <= true_auc <= ci.hi
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_is_stratified_on_tiny_samples():
    ci = roc.bootstrap_auc_ci([1, 1, 0, 0], [0.9, 0.2, 0.4, 0.1], n=200, seed=0)
    assert np.isfinite([ci.lo, ci.hi, ci.se]).all() and 0.0 <= ci.lo <= ci.hi <= 1.0


def test_pr_auc():
    y = np.array([1, 0, 1, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    # precision at each positive: 1/1, 2/3, 3/6 -> AP = (1 + 2/3 + 1/2) / 3
    assert roc.pr_auc(y, s) == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    assert roc.pr_auc(y, y.astype(float)) == 1.0


def test_operating_points():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # cut 0.7: sens 3/4 spec 1 (J = .75); cut 0.4: sens 1, spec 3/4 (J = .75) -> highest wins
    assert roc.youden_threshold(y, s) == 0.7
    assert roc.threshold_at_sensitivity(y, s, 1.0) == 0.4
    assert roc.threshold_at_sensitivity(y, s, 0.5) == 0.8
    assert roc.threshold_at_sensitivity(y, s, 0.0) == 0.9
    cm = roc.confusion_metrics(y, s, 0.6)
    assert (cm["tp"], cm["fp"], cm["tn"], cm["fn"]) == (3, 1, 3, 1)
    assert cm["sensitivity"] == cm["specificity"] == cm["ppv"] == cm["npv"] == 0.75
    assert cm["accuracy"] == 0.75


def test_confusion_metrics_empty_classes_are_nan():
    cm = roc.confusion_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
    assert np.isnan(cm["sensitivity"]) and np.isnan(cm["ppv"])
    assert cm["specificity"] == 1.0 and cm["npv"] == 1.0 and cm["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("y", "s", "msg"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "both diseased"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "one score per case"),
    ],
)
def test_bad_input_raises_input_error(y, s, msg):
    with pytest.raises(InputError, match=msg):
        roc.delong_ci(y, s)
    with pytest.raises(InputError):
        roc.threshold_at_sensitivity([0, 1], [0.1, 0.2], 1.5)
