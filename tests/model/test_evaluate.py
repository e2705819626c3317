"""Evaluation: every report section, metrics.json keys, Grad-CAM, baseline, and thresholds that
come from validation only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bonebase.model.baseline import baseline_scores, fit_baseline
from bonebase.model.evaluate import evaluate, write_outputs
from bonebase.model.report import SECTIONS
from bonebase.stats import auc
from tests.model.conftest import EXTERNAL

SET_KEYS = (
    "n_cases", "auc", "auc_delong_lo", "auc_delong_hi", "auc_boot_lo", "auc_boot_hi", "pr_auc",
    "youden_sensitivity", "youden_specificity", "youden_ppv", "youden_npv", "youden_accuracy",
    "youden_tp", "fixed_sens_sensitivity", "fixed_sens_specificity", "ece", "brier",
    "baseline_auc", "delta_auc_vs_baseline", "delong_p_vs_baseline",
)  # fmt: skip


@pytest.fixture(scope="module")
def evaluation(checkpoint, frame, tiny_data):
    return evaluate(
        checkpoint=checkpoint,
        frame=frame,
        data_dir=tiny_data,
        bootstrap=50,
        gradcam_per_class=1,
        tsne=True,
        seed=0,
    )


def test_writes_metrics_roc_and_every_report_section(evaluation, tmp_path):
    out = {k: tmp_path / n for k, n in (("m", "metrics.json"), ("r", "roc.csv"), ("h", "r.html"))}
    write_outputs(evaluation, metrics_json=out["m"], roc_csv=out["r"], report_html=out["h"])
    metrics = json.loads(out["m"].read_text())
    for name in ("test", f"external_{EXTERNAL}", "external"):
        assert name in metrics, name
        if "note" not in metrics[name]:  # a tiny set may hold one class only
            missing = [k for k in SET_KEYS if k not in metrics[name]]
            assert not missing, (name, missing)
            assert (
                metrics[name]["auc_delong_lo"]
                <= metrics[name]["auc"]
                <= metrics[name]["auc_delong_hi"]
            )
    for key in ("temperature", "threshold_youden", "threshold_fixed_sens", "pointing_game"):
        assert key in metrics
    assert metrics["temperature"] > 0
    roc = pd.read_csv(out["r"])
    assert list(roc.columns) == ["set", "model", "fpr", "tpr", "threshold"]
    assert set(roc["model"]) == {"model", "baseline"}
    assert roc["fpr"].between(0, 1).all() and roc["tpr"].between(0, 1).all()
    page = out["h"].read_text()
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in page, sid
    assert page.count("data:image/png;base64,") >= 5  # training, ROC+PR, calibration, CAM, t-SNE
    assert "<script" not in page and "http://" not in page  # self-contained


def test_gradcam_maps_and_pointing_game(evaluation, checkpoint):
    assert evaluation.gallery
    for item in evaluation.gallery:
        assert item["heat"].shape == (checkpoint.image_size, checkpoint.image_size)
        assert np.isfinite(item["heat"]).all()
        assert item["image"].shape == item["heat"].shape
    pg = evaluation.metrics["pointing_game"]
    assert 0.0 <= pg <= 1.0 and evaluation.metrics["pointing_game_n"] > 0
    assert evaluation.tsne is not None and {"x", "y", "label", "site"} <= set(evaluation.tsne)


def test_subgroups_cover_site_age_sex_region(evaluation):
    groups = set(evaluation.subgroups["group"])
    assert groups == {"site", "age_band", "sex", "region"}
    sites = set(evaluation.subgroups.loc[evaluation.subgroups["group"] == "site", "value"])
    assert EXTERNAL in sites


def test_thresholds_come_from_validation_only(checkpoint, frame, tiny_data, evaluation):
    # Flip every test and external label and drop some test cases: nothing fitted may move.
    changed = frame.copy()
    held = changed["split"].isin(["test", "external"])
    changed.loc[held, "y"] = 1 - changed.loc[held, "y"]
    drop = changed.index[changed["split"] == "test"][:3]
    changed = changed.drop(index=drop).reset_index(drop=True)
    other = evaluate(
        checkpoint=checkpoint, frame=changed, data_dir=tiny_data, bootstrap=20,
        gradcam_per_class=0, tsne=False, seed=0,
    )  # fmt: skip
    # Equal up to float summation order: the val rows are predicted in batches beside the test
    # rows, and dropping three of those moves the batch boundaries (a 1e-9 relative change in
    # the logits); a value fitted on the flipped test labels would move by far more than 1e-6.
    for key in ("temperature", "threshold_youden", "threshold_fixed_sens"):
        assert other.metrics[key] == pytest.approx(evaluation.metrics[key], rel=1e-6), key
    _close(other.metrics["val"], evaluation.metrics["val"])
    ext = f"external_{EXTERNAL}"
    if "auc" in evaluation.metrics[ext]:
        assert other.metrics[ext]["auc"] == pytest.approx(1 - evaluation.metrics[ext]["auc"])


def _close(a, b, where="val"):
    """``a`` equals ``b`` (nested dicts and lists) with floats equal to a relative 1e-6."""
    if isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in b:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, nan_ok=True), where
    else:
        assert a == b, where


def test_clinical_baseline_learns_from_clinical_fields():
    rng = np.random.default_rng(0)
    n = 200
    age = rng.integers(5, 80, n)
    cases = pd.DataFrame(
        {
            "age": age,
            "sex": rng.choice(["M", "F"], n),
            "region": rng.choice(["knee", "hip"], n),
            "y": (age > 40).astype(int),
        }
    )
    model = fit_baseline(cases.iloc[:150])
    assert auc(cases["y"][150:], baseline_scores(model, cases.iloc[150:])) > 0.95
