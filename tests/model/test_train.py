"""Training runs, stops early, and its checkpoint round-trips with identical outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bonebase.errors import InputError, NotFoundError
from bonebase.model.checkpoint import load_checkpoint, save_checkpoint
from bonebase.model.train import EarlyStopping, class_weights, train


def test_training_runs_and_records_provenance(checkpoint):
    hist = checkpoint.history
    assert 1 <= len(hist) <= 2
    assert all(np.isfinite(h["train_loss"]) and 0.0 <= h["val_auc"] <= 1.0 for h in hist)
    best = checkpoint.train_params["best_epoch"]
    assert hist[best - 1]["val_auc"] == max(h["val_auc"] for h in hist)
    assert checkpoint.task == "benign_vs_malignant" and checkpoint.image_size == 64
    assert checkpoint.dataset_version == "test-v1" and checkpoint.export_size == 64
    assert 0.0 <= checkpoint.threshold <= 1.0
    assert checkpoint.train_params["seed"] == 1 and checkpoint.train_params["arch"] == "resnet18"


def test_early_stopping_rule():
    stop = EarlyStopping(patience=2)
    assert stop.update(0.6, 1) == (True, False)
    assert stop.update(0.7, 2) == (True, False)
    assert stop.update(0.7, 3) == (False, False)  # equal is not better
    assert stop.update(0.65, 4) == (False, True)
    assert stop.best_epoch == 2 and stop.best == 0.7


def test_training_stops_early(frame, tiny_data):
    # lr = 0 leaves the weights as they are, so validation AUC cannot keep improving.
    ckpt = train(
        frame=frame,
        data_dir=tiny_data,
        task="benign_vs_malignant",
        image_size=32,
        epochs=6,
        batch_size=32,
        lr=0.0,
        weight_decay=0.0,
        patience=1,
        num_workers=0,
    )
    assert len(ckpt.history) < 6
    assert len(ckpt.history) - ckpt.train_params["best_epoch"] == 1


def test_class_weights_balance_the_loss():
    w = class_weights(np.array([0, 0, 0, 1]))
    assert w[1] / w[0] == pytest.approx(3.0)


def test_checkpoint_round_trip_gives_identical_outputs(checkpoint, tmp_path):
    path = save_checkpoint(checkpoint, tmp_path / "m" / "model.pt")
    loaded = load_checkpoint(path)
    x = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(checkpoint.network()(x), loaded.network()(x))
    fields = ("arch", "task", "image_size", "threshold", "dataset_version", "code_revision")
    for field in (*fields, "export_size"):
        assert getattr(loaded, field) == getattr(checkpoint, field)
    assert loaded.train_params == checkpoint.train_params
    assert loaded.history == checkpoint.history


def test_bad_inputs_are_refused(frame, tiny_data, tmp_path):
    with pytest.raises(NotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_checkpoint(tmp_path / "junk.pt")
    only_one_class = frame[(frame["split"] != "val") | (frame["y"] == 1)]
    with pytest.raises(InputError, match="val split"):
        train(frame=only_one_class, data_dir=tiny_data, task="benign_vs_malignant", epochs=1)
