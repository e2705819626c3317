"""Explanation part of an evaluation: heat maps of every test and external radiograph with a
known lesion, their scores (pointing game, weighting game, IoU; by class, site and outline kind,
with bootstrap CIs), the average map by class, site and age band, and the report's gallery.

``target`` picks the class whose map is scored: ``label`` (the true class, as in the pointing
game's definition), ``positive`` (always class 1: "where is the evidence for malignancy") or
``predicted``. In a benign-vs-malignant task both classes have a lesion; the true class's map of
a benign case shows the evidence *against* malignancy, which may lie anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from bonebase.errors import ConfigError
from bonebase.model.explain import Explainer, ceiling, image_scores, lesion_mask, summarise
from bonebase.model.gradcam import parse_box, scale_box

TARGETS = ("label", "positive", "predicted")


def _target_class(target: str, label: int, pred: int) -> int:
    return {"label": label, "positive": 1, "predicted": pred}[target]


def explain_images(
    explainer: Explainer,
    frame: pd.DataFrame,
    image: Callable[[int], torch.Tensor],
    sizes: list[int],
    pred: np.ndarray,
    *,
    image_size: int,
    target: str = "label",
    threshold: float = 0.5,
    bootstrap: int = 200,
    seed: int = 7,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Scores per evaluation set (``frame`` has split, site, y, age_band, lesion_box and maybe
    lesion_outline) and average maps (key "class 0", "site X", "age 0-19", plus "image ..." and
    "lesion ..." for the average radiograph and lesion mask of the external set's groups)."""
    if target not in TARGETS:
        raise ConfigError(f"evaluate.heatmap_target={target!r}; choose one of {', '.join(TARGETS)}")
    cells = explainer.cells(image_size)
    rows, heats, masks = [], [], []
    for cls in sorted(frame["y"].unique()):
        idx = np.flatnonzero(frame["y"].to_numpy() == cls)
        found = [(i, *lesion_mask(frame.iloc[i], from_size=sizes[i], to_size=image_size))
                 for i in idx]
        found = [f for f in found if f[1] is not None]
        by_class: dict[int, list] = {}
        for i, m, kind in found:
            c = _target_class(target, int(cls), int(pred[i]))
            by_class.setdefault(c, []).append((i, m, kind))
        for c, items in by_class.items():
            imgs = torch.stack([image(i) for i, _, _ in items])
            for (i, m, kind), h in zip(items, explainer.maps(imgs, c), strict=True):
                r = frame.iloc[i]
                rows.append({**image_scores(h, m, threshold=threshold), "ceiling": ceiling(m, cells),
                             "label": int(r["y"]), "site": r["site"], "split": r["split"],
                             "age_band": r["age_band"], "mask_kind": kind, "i": i})
                heats.append(h)
                masks.append(m)
    scores = pd.DataFrame(rows)
    out: dict = {"method": explainer.method, "layer": explainer.layer, "cells": cells,
                 "target": target, "threshold": threshold}
    if scores.empty:
        return out, {}
    for name, part in (("test", scores[scores["split"] == "test"]),
                       ("external", scores[scores["split"] == "external"])):
        if len(part):
            out[name] = summarise(part, bootstrap=bootstrap, seed=seed)
    ext = scores[scores["split"] == "external"]
    ext = ext if len(ext) else scores
    heat_arr, mask_arr = np.stack(heats), np.stack(masks).astype(np.float32)
    means: dict[str, np.ndarray] = {}
    for key, col in (("class", "label"), ("site", "site"), ("age", "age_band")):
        for value, g in ext.groupby(col, sort=True):
            pos = g.index.to_numpy()
            means[f"{key} {value}"] = heat_arr[pos].mean(0)
            means[f"lesion {key} {value}"] = mask_arr[pos].mean(0)
            means[f"image {key} {value}"] = torch.stack(
                [image(int(i))[0] for i in g["i"]]
            ).mean(0).numpy()
    return out, means


def gallery(
    explainer: Explainer,
    frame: pd.DataFrame,
    image: Callable[[int], torch.Tensor],
    sizes: list[int],
    prob_img: np.ndarray,
    threshold: float,
    per_class: int,
    seed: int,
    *,
    image_size: int,
    target: str = "label",
) -> list[dict]:
    """Heat maps of a sample of correct and wrong images per class for the report."""
    pred = (prob_img >= threshold).astype(int)
    rng = np.random.default_rng(seed)
    items = []
    for cls in (0, 1):
        idx_cls = np.flatnonzero(frame["y"].to_numpy() == cls)
        for correct in (True, False):
            pool = [i for i in idx_cls if (pred[i] == cls) == correct]
            for i in sorted(rng.permutation(pool)[:per_class].tolist()) if pool else []:
                img = image(i)
                box = parse_box(frame["lesion_box"].iloc[i])
                c = _target_class(target, cls, int(pred[i]))
                items.append(
                    {
                        "image": img[0].numpy(),
                        "heat": explainer.maps(img[None], c)[0],
                        "box": scale_box(box, from_size=sizes[i], to_size=image_size)
                        if box else None,
                        "label": cls,
                        "pred": int(pred[i]),
                        "prob": float(prob_img[i]),
                        "site": frame["site"].iloc[i],
                        "correct": correct,
                    }
                )
    return items


__all__ = ["TARGETS", "explain_images", "gallery"]
