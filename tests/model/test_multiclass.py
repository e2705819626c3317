"""BTXRD's tasks on the model side (#20 items 4-5): per-class metrics, grouped splits with a
centre held out, the three-class softmax model and tumour_vs_normal trained and evaluated on a
tiny BTXRD-like export, and lesion outlines in the exported image's pixels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bonebase.dataset.labels import LABEL_COLUMNS, lesion_fields
from bonebase.dataset.split import assign_splits, write_assignments
from bonebase.errors import InputError
from bonebase.model.checkpoint import CLASS_NAMES, load_checkpoint, save_checkpoint
from bonebase.model.data import load_frame
from bonebase.model.multiclass import class_metrics
from bonebase.model.multiclass_eval import evaluate_classes, flat_metrics, render_section
from bonebase.vocab import TASKS
from tests.model.btxrd_like import make_btxrd_like

EXTERNAL = "BTX3"


def test_every_vocabulary_task_has_class_names():
    assert set(CLASS_NAMES) == set(TASKS)
    assert CLASS_NAMES["normal_benign_malignant"] == ["normal", "benign", "malignant"]


def test_class_metrics_by_hand():
    # true:  0 0 0 0 1 1 1 2 2 2 ; predicted (argmax below): 0 0 0 1 1 1 2 2 2 0
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    prob = np.full((10, 3), 0.1)
    prob[np.arange(10), pred] = 0.8
    m = class_metrics(y, prob, ["normal", "benign", "malignant"])
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    normal, benign, malignant = (m["per_class"][c] for c in ("normal", "benign", "malignant"))
    assert normal["precision"] == pytest.approx(3 / 4) and normal["recall"] == pytest.approx(3 / 4)
    assert benign["precision"] == pytest.approx(2 / 3) and benign["recall"] == pytest.approx(2 / 3)
    assert malignant["precision"] == pytest.approx(2 / 3)
    assert malignant["recall"] == pytest.approx(2 / 3)
    assert malignant["specificity"] == pytest.approx(6 / 7)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 3 + 2 / 3) / 3)
    assert 0 <= m["macro_auc_ovr"] <= 1


def test_class_metrics_binary_at_a_threshold_and_bootstrap():
    y = np.array([0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
    m = class_metrics(y, p1, ["normal", "tumour"], pred=(p1 >= 0.5).astype(int), bootstrap=50)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["per_class"]["tumour"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["tumour"]["auc_ovr"] == pytest.approx(8 / 9)
    t = m["per_class"]["tumour"]
    assert t["recall_lo"] <= t["recall"] <= t["recall_hi"]


def test_class_metrics_refuses_mismatched_input():
    with pytest.raises(InputError, match="3 cases x 3 classes"):
        class_metrics([0, 1, 2], np.zeros((3, 2)), ["a", "b", "c"])
    with pytest.raises(InputError, match="labels must be 0..1"):
        class_metrics([0, 2], np.array([0.2, 0.7]), ["a", "b"])


def test_a_class_never_predicted_has_no_precision():
    m = class_metrics([0, 1, 2], np.tile([0.8, 0.1, 0.1], (3, 1)), ["n", "b", "m"])
    assert m["per_class"]["m"]["precision"] is None  # JSON-safe, not NaN
    assert m["per_class"]["m"]["recall"] == 0.0
    json.dumps(m)


def test_lesion_outline_in_exported_pixels():
    # A 200 x 100 (rows x columns) image exported at 64: scale 0.32, padded 16 px left/right.
    shapes = [
        {"kind": "polygon", "points": [(10, 20), (60, 20), (60, 80)]},
        {"kind": "rectangle", "points": [(5, 15), (65, 90)]},  # the polygon's box
    ]
    f = lesion_fields(shapes, rows=200, columns=100, size=64)
    assert f["lesion_box"] == "17.6 4.8 36.8 28.8"
    assert json.loads(f["lesion_outline"]) == [[[19.2, 6.4], [35.2, 6.4], [35.2, 25.6]]]
    # A box alone (no outline) becomes a four-corner outline.
    only_box = lesion_fields([shapes[1]], rows=200, columns=100, size=64)
    assert len(json.loads(only_box["lesion_outline"])[0]) == 4
    assert lesion_fields([], rows=200, columns=100, size=64) == {
        "lesion_box": "",
        "lesion_outline": "",
    }


def test_an_exported_outline_rasterises_on_the_model_input():
    from bonebase.model.explain import outline_mask  # the heat-map scores' reader (H6)

    # A 64 x 64 square lesion in a 256 x 256 source, exported at 32 px, scored at 64 px.
    f = lesion_fields(
        [{"kind": "polygon", "points": [(64, 64), (128, 64), (128, 128), (64, 128)]}],
        rows=256, columns=256, size=32,
    )  # fmt: skip
    mask = outline_mask(f["lesion_outline"], 64, scale=64 / 32)
    assert mask.shape == (64, 64)
    assert mask[17:31, 17:31].all() and not mask[:15].any() and not mask[:, 34:].any()
    assert abs(int(mask.sum()) - 16 * 16) <= 2 * 17  # area, up to the edge pixels


@pytest.fixture(scope="module")
def btxrd_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("btxrd_data")
    labels = make_btxrd_like(data)
    split = assign_splits(
        labels,
        None,
        seed=3,
        val_fraction=0.25,
        test_fraction=0.25,
        external_sites=[EXTERNAL],
        stratify="normal_benign_malignant",
    )
    write_assignments(split, data / "split.csv")
    return data, labels, split


def test_grouped_split_keeps_a_patients_views_together_and_holds_a_centre_out(btxrd_data):
    data, labels, split = btxrd_data
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert labels.groupby("patient_id").size().max() > 1  # patients with several views
    frame = labels.merge(split, on=["site", "patient_id"])
    assert len(frame) == len(labels)
    per_patient = frame.groupby(["site", "patient_id"])["split"].nunique()
    assert (per_patient == 1).all()
    assert set(frame.loc[frame["site"] == EXTERNAL, "split"]) == {"external"}
    assert "external" not in set(frame.loc[frame["site"] != EXTERNAL, "split"])
    for part in ("train", "val", "test"):  # stratified: every class in every internal split
        assert set(frame.loc[frame["split"] == part, "normal_benign_malignant"]) == {"0", "1", "2"}
    # Normal images are outside benign_vs_malignant, inside the two BTXRD tasks.
    normal = labels[labels["diagnosis"] == "normal"]
    assert (normal["benign_vs_malignant"] == "").all()
    assert set(normal["tumour_vs_normal"]) == {"0"} and set(normal["normal_benign_malignant"]) == {
        "0"
    }


def _train(data, task):
    from bonebase.model.train import train

    return train(
        frame=load_frame(data, task=task),
        data_dir=data,
        task=task,
        arch="resnet10-slim",
        image_size=64,
        epochs=2,
        batch_size=16,
        lr=1e-3,
        patience=2,
        num_workers=0,
        seed=1,
        dataset_version="btxrd-like",
    )


def test_three_class_model_trains_and_reports_per_class(btxrd_data, tmp_path):
    data, _, _ = btxrd_data
    ckpt = _train(data, "normal_benign_malignant")
    assert ckpt.num_classes == 3 and ckpt.threshold is None
    assert ckpt.state_dict["fc.weight"].shape[0] == 3  # a softmax head of three logits
    assert all(np.isfinite(e["val_auc"]) for e in ckpt.history)  # macro one-vs-rest AUC
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "model.pt"))
    assert loaded.classes == ["normal", "benign", "malignant"] and loaded.threshold is None

    from bonebase.model.inference import Predictor

    predictor = Predictor(loaded)
    out = predictor.predict([np.random.default_rng(0).random((80, 60), dtype=np.float32)])[0]
    assert set(out["probabilities"]) == {"normal", "benign", "malignant"}
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert out["predicted_class"] == max(out["probabilities"], key=out["probabilities"].get)
    assert out["threshold"] is None
    assert predictor.metadata()["threshold"] is None

    frame = load_frame(data, task="normal_benign_malignant")
    block = evaluate_classes(checkpoint=loaded, frame=frame, data_dir=data, bootstrap=20)
    assert {"val", "test", f"external_{EXTERNAL}"} <= set(block["sets"])
    test = block["sets"]["test"]
    n_test = frame.loc[frame["split"] == "test", "case_id"].nunique()
    cm = np.array(test["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == test["n_cases"] == n_test
    for c, name in enumerate(block["classes"]):
        row = test["per_class"][name]
        assert row["support"] == cm[c].sum()
        if cm[:, c].sum():
            assert row["precision"] == pytest.approx(cm[c, c] / cm[:, c].sum())
        assert row["recall"] == pytest.approx(cm[c, c] / cm[c].sum())
    page = render_section(block)
    assert 'id="per-class"' in page and "0.734" in page  # the paper's malignant precision
    assert "random 80/20" in page and "held-out centre" in page
    for name in ("normal", "benign", "malignant"):
        assert f"true {name}" in page
    flat = flat_metrics(block)
    assert "test.malignant.recall" in flat
    json.dumps(block)

    # The evaluate stage's own path (pipelines/evaluate.py): metrics.json and the HTML report.
    from bonebase.model.evaluate import evaluate, write_outputs

    ev = evaluate(checkpoint=loaded, frame=frame, data_dir=data, bootstrap=20, tsne=False)
    write_outputs(
        ev,
        metrics_json=tmp_path / "metrics.json",
        roc_csv=tmp_path / "roc.csv",
        report_html=tmp_path / "report.html",
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["per_class"]["sets"]["test"]["confusion_matrix"] == test["confusion_matrix"]
    report = (tmp_path / "report.html").read_text()
    assert 'id="per-class"' in report and "Per-class precision and recall" in report


def test_tumour_vs_normal_trains_and_decides_at_its_threshold(btxrd_data):
    data, _, _ = btxrd_data
    ckpt = _train(data, "tumour_vs_normal")
    assert ckpt.classes == ["normal", "tumour"] and 0 <= ckpt.threshold <= 1
    frame = load_frame(data, task="tumour_vs_normal")
    assert set(frame["y"]) == {0, 1} and len(frame) == len(pd.read_csv(data / "labels.csv"))
    block = evaluate_classes(checkpoint=ckpt, frame=frame, data_dir=data, bootstrap=0)
    assert "P(tumour) >=" in block["decision"] and "paper" not in block
    ext = block["sets"][f"external_{EXTERNAL}"]
    assert set(ext["per_class"]) == {"normal", "tumour"}
    assert np.array(ext["confusion_matrix"]).sum() == ext["n_cases"]


def test_labels_outside_the_task_classes_are_refused(btxrd_data, tmp_path):
    data, labels, split = btxrd_data
    bad = labels.copy()
    bad.loc[bad.index[0], "tumour_vs_normal"] = "2"
    bad.to_csv(tmp_path / "labels.csv", index=False)
    split.to_csv(tmp_path / "split.csv", index=False)
    with pytest.raises(InputError, match="labels are 0..1"):
        load_frame(tmp_path, task="tumour_vs_normal")


def test_a_class_missing_from_train_is_refused(btxrd_data):
    from bonebase.model.train import train

    data, _, _ = btxrd_data
    frame = load_frame(data, task="normal_benign_malignant")
    frame = frame[~((frame["split"] == "train") & (frame["y"] == 2))]
    with pytest.raises(InputError, match="no case of class malignant"):
        train(frame=frame, data_dir=data, task="normal_benign_malignant", epochs=1)
