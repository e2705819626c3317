"""A tiny synthetic consortium exported once per session, and one model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bonebase.dataset.split import assign_splits, write_assignments
from bonebase.model.data import load_frame
from bonebase.model.synthdata import export_synth
from bonebase.synth import generate

SITES = 3
CASES = 24  # the generator's minimum is 22 (one case per fault kind, twice)
EXTERNAL = "MUC"  # the third generated site (HX, BJ1, MUC, ...)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "consortium"
    generate(out, sites=SITES, cases_per_site=CASES, seed=11, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_data(synth_dir, tmp_path_factory) -> Path:
    """data/ in the export contract: images at 64 px (8-bit), labels.csv, split.csv."""
    data = tmp_path_factory.mktemp("data")
    labels = export_synth(synth_dir, data, size=64, bits=8, workers=2)
    split = assign_splits(
        labels, None, seed=3, val_fraction=0.25, test_fraction=0.2, external_sites=[EXTERNAL]
    )
    write_assignments(split, data / "split.csv")
    return data


@pytest.fixture(scope="session")
def frame(tiny_data):
    return load_frame(tiny_data, task="benign_vs_malignant")


@pytest.fixture(scope="session")
def checkpoint(frame, tiny_data):
    from bonebase.model.train import train

    return train(
        frame=frame,
        data_dir=tiny_data,
        task="benign_vs_malignant",
        image_size=64,
        epochs=2,
        batch_size=16,
        patience=1,
        num_workers=0,
        seed=1,
        dataset_version="test-v1",
    )
