"""A synthetic consortium of four hospitals cut into one bonebase home per site, once per
session: HX, BJ1 and BOS train; MUC is the consortium's locked external site, so its home holds
no case to train on (the no-data site of the bad-input tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bonebase.dataset.split import assign_splits, write_assignments
from bonebase.federated.homes import partition_export
from bonebase.model.synthdata import export_synth
from bonebase.synth import generate

TRAINING = ["HX", "BJ1", "BOS"]
EXTERNAL = "MUC"
# The network of pipelines/train.py at its smallest: a slim ResNet at 32 px.
PARAMS = {
    "task": "benign_vs_malignant",
    # batches of 3: the smallest home (12 training images) makes the 4 a default epoch needs
    "train": {"arch": "resnet10-slim", "image_size": 32, "batch_size": 3, "lr": 0.002,
              "weight_decay": 0.0, "seed": 1, "num_workers": 0, "amp": False},
    "evaluate": {"bootstrap": 20, "gradcam_per_class": 1, "tsne": False, "seed": 1,
                 "shortcut_probe_on": False, "ood_quantile": None},
    # the gate's checks run; the bar suits a model trained for seconds on 66 cases
    "release": {"min_test_cases": 5, "ece_max": 1.0},
}  # fmt: skip
#: run-config overrides for in-process simulations of the bad-input tests
TINY = {"task": PARAMS["task"], **{k.replace("_", "-"): v for k, v in PARAMS["train"].items()}}


def optimizer_steps(lineage: dict) -> list[dict[str, int]]:
    """Per round of a run's lineage, each site's kept optimizer steps before the round."""
    return [{site: m["optimizer-steps"] for site, m in r["train"].items()}
            for r in lineage["rounds_detail"]]  # fmt: skip


@pytest.fixture(scope="session")
def consortium(tmp_path_factory) -> Path:
    """``root/data``: the consortium's export (val/test of all sites, MUC external);
    ``root/homes/<CODE>``: each site's home with only its own export; ``root/params.yaml``."""
    root = tmp_path_factory.mktemp("fed")
    generate(root / "synth", sites=4, cases_per_site=22, seed=11, workers=2)
    labels = export_synth(root / "synth", root / "data", size=32, bits=8, workers=2)
    assert sorted(set(labels["site"])) == sorted([*TRAINING, EXTERNAL])
    split = assign_splits(labels, None, seed=3, val_fraction=0.25, test_fraction=0.2,
                          external_sites=[EXTERNAL])  # fmt: skip
    write_assignments(split, root / "data" / "split.csv")
    partition_export(root / "data", root / "homes", [*TRAINING, EXTERNAL])
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    return root
