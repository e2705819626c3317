"""A tiny model trained where the label is planted outside the lesion (a bright corner mark on
every malignant radiograph, and ages that follow the label, as skeletal maturity would): the
pointing game and the shortcut probe flag it, and the release gate refuses the model."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bonebase.model.data import load_frame
from bonebase.model.evaluate import evaluate
from bonebase.release.gate import check_gate

MARK = 14  # px of the 64 px export: the top-left corner, away from every lesion


@pytest.fixture(scope="module")
def planted(tiny_data, tmp_path_factory):
    data = tmp_path_factory.mktemp("planted")
    shutil.copytree(tiny_data / "images", data / "images")
    shutil.copy(tiny_data / "split.csv", data / "split.csv")
    labels = pd.read_csv(tiny_data / "labels.csv", dtype=str)
    malignant = labels["benign_vs_malignant"] == "1"
    for rel in labels.loc[malignant, "image"]:
        img = np.array(Image.open(data / rel))
        img[:MARK, :MARK] = np.iinfo(img.dtype).max
        Image.fromarray(img).save(data / rel)
    labels["age"] = np.where(malignant, "12", "45")
    labels.to_csv(data / "labels.csv", index=False)
    boxes = labels["lesion_box"].dropna().str.split(expand=True).astype(float)
    assert ((boxes[0] > MARK) | (boxes[1] > MARK)).all()  # no lesion under the mark
    return data


def test_planted_label_outside_the_lesion_is_flagged_and_refused(planted):
    from bonebase.model.train import train

    frame = load_frame(planted, task="benign_vs_malignant")
    ckpt = train(frame=frame, data_dir=planted, task="benign_vs_malignant", arch="resnet10-slim",
                 image_size=64, epochs=4, batch_size=16, lr=2e-3, patience=4, num_workers=0,
                 seed=1, amp=False)
    ev = evaluate(checkpoint=ckpt, frame=frame, data_dir=planted, bootstrap=50,
                  gradcam_per_class=1, tsne=False, seed=0, heatmap_target="positive")
    m = ev.metrics
    assert m["test"]["auc"] > 0.9  # it scores well ...
    ext = m["explanation"]["external"]["all"]
    assert ext["pointing_game"] < 0.3 and ext["weighting_game"] < 0.2  # ... looking elsewhere
    probe = m["shortcut_probe"]
    assert "age_band" in probe["suspect"] and probe["label_from_age_band_auc"] > 0.99
    ood = m["ood"]  # the detector is calibrated and reported with every evaluation
    assert 0 <= ood["false_alarm_external"] <= 1 and ood["n_unrelated"] == 60
    assert 0 <= ood["detection_unrelated"] <= 1 and ood["detector"]["k"] >= 1
    gate = check_gate(m, policy={"pointing_game_min": 0.8, "weighting_game_min": 0.5})
    refused = {c["check"] for c in gate["checks"] if not c["passed"]}
    assert not gate["passed"] and refused == {"pointing_game", "weighting_game"}
