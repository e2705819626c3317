"""Heat-map scores (pointing game, weighting game, IoU, ceiling), outlines, methods, the shortcut
probe and the release gate's explanation criterion, on hand-made maps and a tiny network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bonebase.errors import ConfigError, InputError
from bonebase.model.explain import (
    METHODS,
    Explainer,
    box_mask,
    ceiling,
    image_scores,
    mean_ci,
    outline_mask,
    summarise,
)
from bonebase.model.networks import build_network
from bonebase.model.shortcut import probe_auc, shortcut_probe
from bonebase.release.gate import check_gate


def test_box_mask_covers_pixel_centres_inside():
    m = box_mask((2.0, 4.0, 6.0, 5.0), 8)
    assert m.sum() == 4 * 1 and m[4, 2:6].all() and not m[3].any()


def test_outline_polygon_and_rectangle_and_errors():
    tri = json.dumps([[[0, 0], [16, 0], [0, 16]]])
    m = outline_mask(tri, 32, scale=2.0)  # drawn at twice the coordinates
    assert m[1, 1] and m[2, 28] and not m[30, 30]
    rect = outline_mask(json.dumps([{"kind": "rectangle", "points": [[4, 4], [8, 8]]}]), 16)
    assert rect[6, 6] and not rect[10, 10]
    assert outline_mask("", 16) is None and outline_mask(float("nan"), 16) is None
    with pytest.raises(InputError, match="lesion_outline"):
        outline_mask("{not json", 16)


def test_scores_of_a_map_on_and_off_the_lesion():
    mask = box_mask((8, 8, 16, 16), 32)
    on = np.zeros((32, 32), np.float32)
    on[10:14, 10:14] = 1.0
    s = image_scores(on, mask)
    assert s["hit"] == 1.0 and s["energy"] == pytest.approx(1.0) and 0 < s["iou"] < 1
    off = np.zeros((32, 32), np.float32)
    off[0:4, 24:28] = 1.0
    s = image_scores(off, mask)
    assert s["hit"] == 0.0 and s["energy"] == 0.0 and s["iou"] == 0.0
    flat = np.ones((32, 32), np.float32)
    assert image_scores(flat, mask)["energy"] == pytest.approx(mask.mean())


def test_ceiling_says_whether_a_layer_grid_can_hit_a_lesion():
    narrow = box_mask((60, 0, 70, 128), 128)  # between the 4x4 grid's centres 48 and 80
    assert not ceiling(narrow, 4) and not ceiling(narrow, 8) and ceiling(narrow, 16)
    assert ceiling(box_mask((40, 40, 56, 56), 128), 4)


def test_summary_has_cis_per_class_site_and_outline_kind():
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({
        "hit": rng.integers(0, 2, 40).astype(float), "energy": rng.random(40),
        "iou": rng.random(40), "ceiling": True, "area": 0.1,
        "label": [0, 1] * 20, "site": ["A"] * 30 + ["B"] * 10,
        "mask_kind": ["box"] * 35 + ["outline"] * 5,
    })
    out = summarise(scores, bootstrap=100, seed=1)
    assert {"all", "class0", "class1", "site_A", "site_B", "box", "outline"} <= set(out)
    a = out["all"]
    assert a["pointing_game_lo"] <= a["pointing_game"] <= a["pointing_game_hi"]
    assert out["site_B"]["n"] == 10
    assert np.isnan(mean_ci(np.array([]), n=10, seed=0)[0])


@pytest.mark.parametrize("method", [m for m in METHODS if m != "occlusion"])
@pytest.mark.parametrize("layer", [None, "layer3"])
def test_every_cam_method_and_layer_gives_unit_maps(method, layer):
    torch.manual_seed(0)
    net = build_network("resnet10-slim")
    ex = Explainer(net, "resnet10-slim", method=method, layer=layer)
    maps = ex.maps(torch.rand(3, 1, 64, 64), 1)
    assert maps.shape == (3, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert ex.cells(64) == (2 if layer is None else 4)


def test_occlusion_points_at_what_the_network_reads():
    # A "network" whose class-1 logit is the mean of the top-left quarter.
    class Corner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            s = (x[:, :, :16, :16].mean((1, 2, 3)) - 0.9) * self.w * 10
            return torch.stack([-s, s], 1)

    ex = Explainer(Corner(), "resnet18", method="occlusion", occlusion_patch=8)
    heat = ex.maps(torch.ones(1, 1, 32, 32), 1)[0]
    assert image_scores(heat, box_mask((0, 0, 16, 16), 32))["energy"] > 0.8


def test_unknown_method_or_layer_names_the_setting():
    net = build_network("resnet10-slim")
    with pytest.raises(ConfigError, match="heatmap_method"):
        Explainer(net, "resnet10-slim", method="lime")
    with pytest.raises(ConfigError, match="heatmap_layer"):
        Explainer(net, "resnet10-slim", layer="layer9")


def test_shortcut_probe_reads_a_site_that_carries_the_label():
    rng = np.random.default_rng(0)
    n = 120
    site = np.array(["A", "B"] * (n // 2))
    y = np.where(site == "A", rng.random(n) < 0.8, rng.random(n) < 0.2).astype(int)
    feats = np.c_[(site == "A") * 3.0 + rng.normal(0, 0.3, n), rng.normal(size=(n, 5))]
    frame = pd.DataFrame({"y": y, "site": site, "case_id": [f"c{i}" for i in range(n)],
                          "age_band": np.where(rng.random(n) < 0.5, "0-19", "20-39")})
    out = shortcut_probe(feats, frame, seed=0)
    assert out["probe_auc_site"] > 0.95 and out["probe_auc_site"] > out["probe_auc_label"]
    assert out["label_from_site_auc"] > 0.7 and out["suspect"] == ["site"]
    assert 0.3 < out["probe_auc_age_band"] < 0.7  # noise: the probe does not invent signal
    assert np.isnan(probe_auc(feats, np.zeros(n), frame["case_id"].to_numpy()))


def test_shortcut_probe_survives_a_rare_class_held_by_one_case():
    """A clean-clone CI's demo failed here: its evaluation set held one case (two views) in an
    age band, so a grouped fold trained on one class and the whole evaluate stage raised."""
    rng = np.random.default_rng(1)
    n = 40
    y = (rng.random(n) < 0.5).astype(int)
    feats = np.c_[y * 3.0 + rng.normal(0, 0.3, n), rng.normal(size=(n, 3))]
    cases = [f"c{i}" for i in range(n - 2)] + ["rare", "rare"]
    frame = pd.DataFrame({"y": y, "site": ["A", "B"] * (n // 2 - 1) + ["A", "A"], "case_id": cases,
                          "age_band": ["0-19"] * (n - 2) + ["60+", "60+"]})
    out = shortcut_probe(feats, frame, seed=0)
    assert np.isnan(out["probe_auc_age_band"])  # one case cannot be split over folds
    assert out["probe_auc_label"] > 0.9 and out["suspect"] == []
    # Three bands, the rarest in two cases: whatever the folds, an AUC or NaN, never an error.
    bands = np.array(["0-19", "20-39"] * (n // 2), dtype=object)
    bands[[3, 4]] = "60+"
    for seed in range(20):
        auc = probe_auc(feats, bands, np.array(cases), seed=seed, folds=2)
        assert np.isnan(auc) or 0.0 <= auc <= 1.0


def _metrics(pg, wg):
    return {"explanation": {"method": "gradcam", "layer": "layer3",
                            "external": {"all": {"n": 50, "pointing_game": pg,
                                                 "weighting_game": wg}}}}


def test_gate_explanation_criterion():
    policy = {"pointing_game_min": 0.8, "weighting_game_min": 0.5}
    assert check_gate(_metrics(0.9, 0.6), policy=policy)["passed"]
    out = check_gate(_metrics(0.9, 0.2), policy=policy)
    assert not out["passed"]
    failed = [c for c in out["checks"] if not c["passed"]]
    assert [c["check"] for c in failed] == ["weighting_game"] and "external" in failed[0]["detail"]
    old = check_gate({}, policy=policy)  # evaluated before explanation scores existed
    assert not old["passed"] and "re-run the evaluate stage" in old["checks"][0]["detail"]


def test_gate_says_it_does_not_judge_three_class_models():
    out = check_gate({"task": "normal_benign_malignant", "per_class": {"sets": {}}},
                     policy={"pointing_game_min": 0.8, "auc_ci_low_min": 0.7})
    assert not out["passed"] and "two-class tasks" in out["checks"][0]["detail"]
