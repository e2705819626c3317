"""Data-parallel training: pipelines/train.py with train.nproc_per_node 2 relaunches itself under
torchrun, two gloo processes on the CPU train in step, and rank 0 alone writes the model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bonebase.model.checkpoint import load_checkpoint
from bonebase.model.distributed import state_digest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "train.py"

#: Tiny params (tests/flows/world.py's TINY train section) with two processes and the lesion
#: loss on, so that the head outside DDP is trained too.
TRAIN = {
    "arch": "resnet18", "image_size": 32, "epochs": 2, "batch_size": 16, "lr": 0.001,
    "weight_decay": 0.0, "patience": 1, "seed": 1, "num_workers": 0, "amp": False,
    "pretrained": None, "lesion_loss_weight": 0.2, "nproc_per_node": 2,
}  # fmt: skip


def _params(path: Path, **train) -> Path:
    path.write_text(
        yaml.safe_dump(
            {"task": "benign_vs_malignant", "train": {**TRAIN, **train}}, sort_keys=False
        )
    )
    return path


def _run(params: Path, data: Path, out: Path, debug: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BONEBASE_DDP_DEBUG_DIR": str(debug)}
    cmd = [sys.executable, str(SCRIPT), "--params", str(params), "--data", str(data)]
    return subprocess.run(
        [*cmd, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300
    )


def test_two_processes_train_in_step_and_rank0_writes_the_model(tiny_data, tmp_path):
    out, debug = tmp_path / "models", tmp_path / "debug"
    proc = _run(_params(tmp_path / "params.yaml"), tiny_data, out, debug)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "train_history.json"]
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.train_params["world_size"] == 2 and ckpt.train_params["batch_size"] == 16
    history = json.loads((out / "train_history.json").read_text())
    assert history == ckpt.history and 1 <= len(history) <= 2
    assert all(h["images_per_s"] > 0 and 0.0 <= h["val_auc"] <= 1.0 for h in history)
    # Only rank 0 logs: one JSON line per epoch, not one per rank.
    logged = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["epoch"] for e in logged] == [h["epoch"] for h in history]
    ranks = {p.name: json.loads(p.read_text()) for p in debug.iterdir()}
    assert sorted(ranks) == ["rank0.json", "rank1.json"]
    # Both ranks hold the very same weights, and they are the ones rank 0 saved.
    assert ranks["rank0.json"]["digest"] == ranks["rank1.json"]["digest"]
    assert ranks["rank0.json"]["digest"] == state_digest(ckpt.state_dict)


def _pipeline_main():
    spec = importlib.util.spec_from_file_location("pipeline_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"nproc_per_node": 0}, "train.nproc_per_node is 0; it must be an integer >= 1"),
        ({"nproc_per_node": -2}, "train.nproc_per_node is -2; it must be an integer >= 1"),
        ({"nproc_per_node": "2"}, "train.nproc_per_node is '2'; it must be an integer >= 1"),
        ({"nproc_per_node": True}, "train.nproc_per_node is True; it must be an integer >= 1"),
        ({"batch_size": 15}, "batch_size 15 is the global batch and must split evenly over 2"),
    ],
    ids=["zero", "negative", "string", "bool", "batch-not-divisible"],
)
def test_bad_values_are_clear_errors_before_any_process_starts(
    train, message, tiny_data, tmp_path, capsys
):
    params = _params(tmp_path / "params.yaml", **train)
    out = tmp_path / "models"
    code = _pipeline_main()(["--params", str(params), "--data", str(tiny_data), "--out", str(out)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
