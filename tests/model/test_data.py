"""The exported view from synth output, and the one shared preprocessing function."""

from __future__ import annotations

import hashlib
import importlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from bonebase.dataset.labels import LABEL_COLUMNS
from bonebase.errors import InputError
from bonebase.model import checkpoint as ckpt_mod
from bonebase.model.augment import batch_augment
from bonebase.model.data import make_dataset, preprocess_for_model, read_png
from bonebase.model.gradcam import parse_box
from tests.model.conftest import EXTERNAL


def test_export_synth_writes_the_contract(tiny_data, synth_dir):
    labels = pd.read_csv(tiny_data / "labels.csv", dtype=str, keep_default_na=False)
    assert tuple(labels.columns) == LABEL_COLUMNS
    assert list(labels["instance_id"]) == sorted(labels["instance_id"])
    assert labels["instance_id"].is_unique
    assert set(labels["benign_vs_malignant"]) <= {"0", "1"}
    assert set(labels["os_vs_gct"]) <= {"0", "1", ""}
    for rel in labels["image"].head(5):
        assert read_png(tiny_data / rel).shape == (64, 64)
    boxes = [parse_box(b) for b in labels["lesion_box"] if b]
    assert boxes and all(0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 for x0, y0, x1, y1 in boxes)
    # Pseudonyms, not the site's ids.
    manifest = pd.read_csv(synth_dir / "HX" / "submission" / "manifest.csv", dtype=str)
    assert not set(manifest["patient_id"]) & set(labels["patient_id"])
    # No faulty file is exported, and no CT/MR slice.
    ids = set(labels["instance_id"])
    for site_dir in synth_dir.glob("*/faults.json"):
        for fault in json.loads(site_dir.read_text()):
            path = site_dir.parent / "submission" / (fault["file"] or "-")
            # A byte-identical copy is the same instance as its exported original.
            if path.is_file() and fault["kind"] != "duplicate_file":
                assert hashlib.sha256(path.read_bytes()).hexdigest() not in ids, fault
    truth = pd.concat(pd.read_csv(p, dtype=str) for p in synth_dir.glob("*/truth.csv"))
    ct_mr = truth[truth["modality"].isin(["CT", "MR"])].head(20)
    for rel in ct_mr["file"]:
        for site in synth_dir.glob("*/submission"):
            if (site / rel).is_file():
                assert hashlib.sha256((site / rel).read_bytes()).hexdigest() not in ids


def test_split_is_patient_grouped_with_external_site(frame):
    assert set(frame.loc[frame["site"] == EXTERNAL, "split"]) == {"external"}
    per_patient = frame.groupby(["site", "patient_id"])["split"].nunique()
    assert (per_patient == 1).all()
    assert {"train", "val", "test"} <= set(frame["split"])


def test_preprocess_for_model_shape_range_and_aspect():
    img = np.zeros((100, 50), np.float32)
    img[:, :] = 1.0
    out = preprocess_for_model(img, 32)
    assert out.shape == (1, 32, 32) and out.dtype == torch.float32
    assert float(out.max()) == pytest.approx(1.0) and float(out.min()) == 0.0
    # Aspect kept: a tall image fills the height, black padding left and right.
    assert float(out[0, :, 0].max()) == 0.0 and float(out[0, :, 16].min()) == pytest.approx(1.0)
    with pytest.raises(InputError):
        preprocess_for_model(np.full((4, 4), np.nan), 8)
    with pytest.raises(InputError):
        preprocess_for_model(np.zeros((2, 4, 4)), 8)


def test_eval_dataset_uses_exactly_the_shared_preprocessing(frame, tiny_data):
    rows = frame.head(4).reset_index(drop=True)
    ds = make_dataset(rows, tiny_data, image_size=48, cache_workers=1)
    for i in range(len(rows)):
        expected = preprocess_for_model(read_png(tiny_data / rows["image"][i]), 48)
        assert torch.equal(torch.as_tensor(ds[i]["image"]), expected)


def test_batch_augment_is_seeded_and_keeps_shape_and_range(frame, tiny_data):
    rows = frame.head(6).reset_index(drop=True)
    ds = make_dataset(rows, tiny_data, image_size=48, cache_workers=1)
    x = torch.stack([ds[i]["image"] for i in range(len(rows))])
    a = batch_augment(x, torch.Generator().manual_seed(3))
    b = batch_augment(x, torch.Generator().manual_seed(3))
    c = batch_augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)
    # Intensity jitter stays small: within the offset of [0, 1] scaled by at most 10 %.
    assert float(a.min()) >= -0.05 - 1e-6 and float(a.max()) <= 1.1 + 0.05 + 1e-6


def test_batch_augment_flip_mirrors_left_right():
    x = torch.zeros(1, 1, 8, 8)
    x[..., :4] = 1.0  # bright left half
    only_flip = dict(p_rotate=0.0, p_flip=1.0, max_shift=0.0, p_intensity=0.0)
    out = batch_augment(x, torch.Generator().manual_seed(0), **only_flip)
    assert torch.allclose(out, x.flip(-1), atol=1e-5)


def test_checkpoint_names_the_shared_function():
    module, name = ckpt_mod.PREPROCESS_FN.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is preprocess_for_model
