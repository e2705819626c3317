"""The out-of-distribution detector: calibrated false alarms, detection of shifted features,
a round trip through the model's metrics, header reasons and the generated unrelated images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bonebase.errors import InputError
from bonebase.model.ood import FeatureOOD, answer, fit_ood, header_reasons, unrelated_images


def _features(rng, n, shift=0.0):
    basis = np.random.default_rng(99).normal(size=(8, 64))  # the same subspace every call
    return rng.normal(size=(n, 8)) @ basis + 0.1 * rng.normal(size=(n, 64)) + shift


def test_threshold_is_calibrated_and_shifted_inputs_are_flagged():
    rng = np.random.default_rng(0)
    det = fit_ood(_features(rng, 400), quantile=0.95, k=8)
    fresh = det.flags(_features(rng, 2000)).mean()
    assert 0.02 < fresh < 0.10  # ~5% false alarms on new in-distribution samples
    off_subspace = rng.normal(size=(200, 64)) * 2.0  # unlike anything seen: off the subspace
    assert det.flags(off_subspace).mean() > 0.95


def test_round_trip_through_json_gives_the_same_scores():
    rng = np.random.default_rng(1)
    det = fit_ood(_features(rng, 100), k=4)
    again = FeatureOOD.from_dict(json.loads(json.dumps(det.to_dict())))
    x = _features(rng, 10)
    assert np.allclose(det.score(x), again.score(x), rtol=1e-4)
    with pytest.raises(InputError, match="re-run the evaluate stage"):
        FeatureOOD.from_dict({"k": 4})
    with pytest.raises(InputError, match="features of shape"):
        det.score(np.zeros((2, 3)))


def test_header_reasons_name_modality_and_body_part():
    assert header_reasons("DX", "KNEE") == [] and header_reasons("CR", None) == []
    reasons = header_reasons("MR", "CHEST")
    assert any("Modality MR" in r for r in reasons) and any("CHEST" in r for r in reasons)


def test_unrelated_images_are_unit_range_and_varied():
    imgs = unrelated_images(12, 32, seed=3)
    assert imgs.shape == (12, 32, 32) and imgs.min() >= 0 and imgs.max() <= 1
    assert len({round(float(i.std()), 3) for i in imgs}) > 5


def test_answer_flags_header_reasons_and_high_scores():
    det = fit_ood(_features(np.random.default_rng(2), 100), k=4)
    calm = answer(det, det.threshold / 2, [])
    assert calm["flag"] is False and calm["reasons"] == [] and calm["score"] is not None
    high = answer(det, det.threshold * 3, [])
    assert high["flag"] and "unlike the training data" in high["reasons"][0]
    header = answer(det, float("nan"), ["Modality MR: ..."])
    assert header["flag"] and header["score"] is None
    old = answer(None, None, [])
    assert old["flag"] is False and "no out-of-distribution detector" in old["note"]
