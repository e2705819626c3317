"""BTXRD end to end on the model side (#20, done-when 2): the generated BTXRD-shaped folder
imported through the real flow, exported (task columns, outlines), split by pseudo-patient with
centre 3 held out, and the three-class task trained and evaluated with per-class figures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bonebase.config import Settings
from bonebase.dataset.export import export
from bonebase.dataset.split import assign_splits, write_assignments
from bonebase.importers import btxrd_import as imp
from bonebase.importers import btxrd_run
from bonebase.importers.btxrd_sample import generate
from bonebase.model.data import load_frame
from bonebase.model.multiclass_eval import evaluate_classes, render_section
from bonebase.storage import open_store

pytestmark = pytest.mark.slow
EXTERNAL = "BTXRD3"


@pytest.fixture
def settings(tmp_path, db_url, db) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="t" * 40, env="test")
    s.ensure_home()
    return s


def test_imported_btxrd_exports_splits_trains_and_reports_per_class(
    settings, db, tmp_path, prefect_harness
):
    root = tmp_path / "BTXRD"
    truth = generate(root, images=40, seed=8, size=(150, 180), faults=False)
    btxrd_run.run(root, sites=imp.DEFAULT_SITES, settings=settings, say=lambda _: None)
    data = tmp_path / "data"
    summary = export(
        db, open_store(settings.object_store_url), data, size=48, bits=8, modalities=["CR", "DX"]
    )
    assert summary.n_images == truth.images  # every imported radiograph is exported
    labels = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    counts = labels["normal_benign_malignant"].value_counts().to_dict()
    assert counts == {
        k: v for k, v in {"0": truth.normal, "1": truth.benign, "2": truth.malignant}.items() if v
    }
    assert (labels.loc[labels["diagnosis"] == "normal", "benign_vs_malignant"] == "").all()
    outlined = labels[labels["lesion_outline"] != ""]
    assert len(outlined) == len(truth.annotated)
    for text in outlined["lesion_outline"]:  # polygons inside the exported 48 x 48 image
        assert all(0 <= v <= 48 for poly in json.loads(text) for pt in poly for v in pt)

    split = assign_splits(
        labels, None, seed=2, val_fraction=0.2, test_fraction=0.2,
        external_sites=[EXTERNAL], stratify="normal_benign_malignant",
    )  # fmt: skip
    write_assignments(split, data / "split.csv")
    frame = load_frame(data, task="normal_benign_malignant")
    # Views of one pseudo-patient (the importer's grouping) never straddle two splits.
    assert (frame.groupby(["site", "patient_id"])["split"].nunique() == 1).all()
    assert frame.groupby(["site", "patient_id"]).size().max() > 1
    assert set(frame.loc[frame["site"] == EXTERNAL, "split"]) == {"external"}

    from bonebase.model.train import train

    ckpt = train(
        frame=frame, data_dir=data, task="normal_benign_malignant", arch="resnet10-slim",
        image_size=48, epochs=2, batch_size=8, lr=1e-3, patience=2, num_workers=0, seed=1,
    )  # fmt: skip
    assert ckpt.num_classes == 3 and ckpt.threshold is None
    block = evaluate_classes(checkpoint=ckpt, frame=frame, data_dir=data, bootstrap=0)
    ext = block["sets"][f"external_{EXTERNAL}"]
    assert ext["n_cases"] == (frame["split"] == "external").sum()
    assert set(ext["per_class"]) == {"normal", "benign", "malignant"}
    page = render_section(block)
    assert f"external_{EXTERNAL}" in page and "precision" in page
