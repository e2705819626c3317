"""The watch's statistics and thresholds without a database: performance figures, drift tests,
the policy from params.yaml, the performance breach rule, the charts."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from bonebase.errors import InputError
from bonebase.monitor import charts, drift, performance
from bonebase.monitor.policy import Policy
from bonebase.monitor.watch import _performance_breach


def _rows(rng, n, shift=0.0):
    return [{"age": float(rng.normal(40, 10)), "sex": "MF"[i % 2], "mean": float(rng.normal(
        0.4 + shift, 0.05)), "manufacturer": "Acme", "probability": float(rng.uniform())}
        for i in range(n)]


def test_figures_match_the_definitions():
    y = [0, 0, 0, 1, 1, 1, 1, 0]
    p = [0.1, 0.4, 0.6, 0.7, 0.8, 0.3, 0.9, 0.2]
    f = performance.figures(y, p, threshold=0.5)
    assert f["n"] == 8 and f["positives"] == 4
    assert f["sensitivity"]["value"] == pytest.approx(3 / 4)  # 0.3 is missed
    assert f["specificity"]["value"] == pytest.approx(3 / 4)  # 0.6 is a false call
    assert f["sensitivity"]["lo"] < 0.75 < f["sensitivity"]["hi"]
    assert f["auc"]["value"] == pytest.approx(14 / 16)
    assert f["auc"]["lo"] < f["auc"]["value"] <= f["auc"]["hi"]
    one_class = performance.figures([1, 1, 1], [0.2, 0.5, 0.9], threshold=0.5)
    assert one_class["auc"] is None and one_class["specificity"] is None
    assert performance.figures([], [], 0.5)["n"] == 0


def test_by_site_groups_months_and_skips_unlabelled():
    rows = [{"site": "A", "month": date(2026, m, 1), "label": i % 2, "probability": i / 10}
            for i, m in enumerate([11, 11, 11, 12, 12, 12], 1)]
    rows.append({"site": "A", "month": date(2026, 12, 1), "label": None, "probability": 0.5})
    out = performance.by_site(rows, 0.5)
    assert out["A"]["all"]["n"] == 6
    assert list(out["A"]["months"]) == ["2026-11", "2026-12"]


def test_drift_finds_a_shift_and_not_noise():
    rng = np.random.default_rng(1)
    ref = _rows(rng, 60)
    same = drift.compare(ref, _rows(rng, 30), alpha=0.05)
    moved = drift.compare(ref, _rows(rng, 30, shift=0.2), alpha=0.05)
    assert "mean" not in same["drifted"]
    assert "mean" in moved["drifted"]
    mean = next(f for f in moved["features"] if f["feature"] == "mean")
    assert mean["shift"] > 2  # four reference standard deviations away
    constant = next(f for f in same["features"] if f["feature"] == "manufacturer")
    assert constant["p_value"] == 1.0 and not constant["drifted"]
    new_vendor = drift.compare(ref, [{**r, "manufacturer": "Other"} for r in _rows(rng, 30)])
    assert "manufacturer" in new_vendor["drifted"]
    few = drift.compare(ref, _rows(rng, 3))
    assert few["tested"] == 0 and few["share"] is None


def test_policy_from_params_checks_its_values():
    assert Policy.from_params(None) == Policy()
    p = Policy.from_params({"auc_min": 0.7, "retrain_on_alert": True, "modalities": ["DX"]})
    assert p.auc_min == 0.7 and p.retrain_on_alert and p.modalities == ("DX",)
    with pytest.raises(InputError, match="unknown key.*auc_minimum"):
        Policy.from_params({"auc_minimum": 0.7})
    with pytest.raises(InputError, match="max_drift_share: must lie between 0 and 1"):
        Policy.from_params({"max_drift_share": 3})
    with pytest.raises(InputError, match="retrain_on_alert: 'yes' is not true or false"):
        Policy.from_params({"retrain_on_alert": "yes"})


def test_performance_breach_needs_enough_cases():
    policy = Policy(auc_min=0.7, auc_ci_low_min=0.55, min_cases=20)
    figs = {"n": 40, "positives": 20, "auc": {"value": 0.62, "lo": 0.45, "hi": 0.79}}
    assert len(_performance_breach(figs, policy)) == 2
    assert _performance_breach({**figs, "n": 10}, policy) == []
    good = {**figs, "auc": {"value": 0.9, "lo": 0.8, "hi": 0.97}}
    assert _performance_breach(good, policy) == []


def test_charts_are_inline_svg():
    svg = charts.band_chart({"A": [("2026-11", 0.8, 0.7, 0.9), ("2026-12", 0.6, 0.4, 0.8)],
                             "B": [("2026-12", 0.7, 0.5, 0.9)]}, title="AUC", floor=0.65)
    assert svg.startswith("<svg") and svg.count("<polygon") == 1 and "stroke-dasharray" in svg
    hist = drift.histogram([{"x": v} for v in range(10)], [{"x": v + 5} for v in range(10)], "x")
    assert charts.paired_histogram(hist, title="x").count("<rect") == 2 * len(hist["reference"])


def test_sensitivity_rule_reads_the_value_and_its_lower_bound():
    figs = {"n": 40, "positives": 12, "auc": None,
            "sensitivity": {"value": 0.58, "lo": 0.32, "hi": 0.81}}
    assert _performance_breach(figs, Policy()) == []  # off by default
    (reason,) = _performance_breach(figs, Policy(sensitivity_min=0.7))
    assert reason == "sensitivity 0.580 < 0.7 (12 positives)"
    (reason,) = _performance_breach(figs, Policy(sensitivity_ci_low_min=0.4))
    assert reason == "sensitivity 95% CI lower bound 0.320 < 0.4"
    assert _performance_breach({**figs, "n": 10}, Policy(sensitivity_min=0.7)) == []
    no_positives = {**figs, "positives": 0, "sensitivity": None}
    assert _performance_breach(no_positives, Policy(sensitivity_min=0.7)) == []
    with pytest.raises(InputError, match="sensitivity_min: must lie between 0 and 1"):
        Policy.from_params({"sensitivity_min": 70})
    assert Policy.from_params({"defer": True, "sensitivity_ci_low_min": 0.4}).defer


def test_scoring_network_gives_the_predictors_probabilities():
    """BatchNorm folded into the convolutions: the same P(class 1) as the network as trained."""
    import torch

    from bonebase.model.networks import build_network
    from bonebase.monitor.scoring import Model, inference_network

    torch.manual_seed(0)
    net = build_network("resnet10-slim")
    for m in net.modules():  # running statistics away from the identity, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    fused = inference_network(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    with torch.inference_mode():
        expected = torch.softmax(net(torch.as_tensor(x)), dim=1)[:, 1].numpy()
    got = Model(id=1, task="benign_vs_malignant", predictor=None, network=fused).probabilities(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
