"""Evaluation of a checkpoint on the internal test split and on each external site, separately
and pooled, as reported in radiology AI papers.

Unit of analysis: the case (mean logits over its radiographs), so that correlated views of one
tumour do not inflate the sample. Everything chosen from data (temperature, the Youden and the
fixed-sensitivity thresholds, the clinical baseline) is fitted on validation or train cases
only, never on the sets it is evaluated on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.manifold import TSNE
from sklearn.metrics import roc_curve

from bonebase.errors import InputError
from bonebase.model.baseline import baseline_scores, fit_baseline
from bonebase.model.checkpoint import Checkpoint
from bonebase.model.data import make_dataset, png_side
from bonebase.model.explain import Explainer
from bonebase.model.explain_eval import explain_images
from bonebase.model.explain_eval import gallery as sample_gallery
from bonebase.model.infer import case_logits, predict
from bonebase.model.multiclass_eval import evaluate_classes, flat_metrics
from bonebase.model.multiclass_eval import summarise as summarise_classes
from bonebase.model.networks import head_layer
from bonebase.model.ood import ood_metrics
from bonebase.model.shortcut import shortcut_probe
from bonebase.stats import (
    apply_temperature,
    auc,
    bootstrap_auc_ci,
    brier_score,
    confusion_metrics,
    delong_ci,
    delong_test,
    expected_calibration_error,
    fit_temperature,
    pr_auc,
    threshold_at_sensitivity,
    youden_threshold,
)

AGE_BANDS = (0, 20, 40, 60, 200)
SUBGROUP_KEYS = ("site", "age_band", "sex", "region")


@dataclass
class Evaluation:
    """Everything the report shows; ``metrics`` is what metrics.json holds."""

    metrics: dict
    roc: pd.DataFrame  # set, model, fpr, tpr, threshold
    cases: dict[str, pd.DataFrame]  # per evaluation set: y, prob, baseline, site, ...
    subgroups: pd.DataFrame
    gallery: list[dict] = field(default_factory=list)
    tsne: pd.DataFrame | None = None
    checkpoint: dict = field(default_factory=dict)
    mean_maps: dict[str, np.ndarray] = field(default_factory=dict)  # explain_eval.explain_images


def _clean(value):
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def set_metrics(
    y: np.ndarray,
    prob: np.ndarray,
    base: np.ndarray,
    *,
    thresholds: dict[str, float],
    bootstrap: int,
    seed: int,
) -> dict:
    """AUC (DeLong and bootstrap CIs), PR-AUC, operating points, calibration, baseline + test."""
    out: dict = {"n_cases": int(len(y)), "n_positive": int(np.sum(y))}
    if len(np.unique(y)) < 2:
        out["note"] = "one class only: AUC undefined"
        return out
    d = delong_ci(y, prob)
    b = bootstrap_auc_ci(y, prob, n=bootstrap, seed=seed)
    out.update(
        auc=d.auc, auc_delong_lo=d.lo, auc_delong_hi=d.hi, auc_boot_lo=b.lo, auc_boot_hi=b.hi
    )
    out["pr_auc"] = pr_auc(y, prob)
    for name, thr in thresholds.items():
        for k, v in confusion_metrics(y, prob, thr).items():
            out[f"{name}_{k}"] = v
    out["ece"] = expected_calibration_error(y, prob)
    out["brier"] = brier_score(y, prob)
    bd = delong_ci(y, base)
    cmp = delong_test(y, prob, base)
    out.update(
        baseline_auc=bd.auc,
        baseline_auc_lo=bd.lo,
        baseline_auc_hi=bd.hi,
        delta_auc_vs_baseline=cmp.diff,
        delong_p_vs_baseline=cmp.p,
    )
    return out


def _age_band(age: pd.Series) -> pd.Series:
    labels = [f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+" for lo, hi in pairwise(AGE_BANDS)]
    return pd.cut(
        pd.to_numeric(age, errors="coerce"), AGE_BANDS, right=False, labels=labels
    ).astype(str)


def subgroup_metrics(cases: pd.DataFrame, *, threshold: float) -> pd.DataFrame:
    """Per site, age band, sex and location region: n, positives, AUC, sens/spec at threshold."""
    frame = cases.assign(age_band=_age_band(cases["age"]))
    rows = []
    for key in SUBGROUP_KEYS:
        for value, g in frame.groupby(key, sort=True):
            y, p = g["y"].to_numpy(), g["prob"].to_numpy()
            cm = confusion_metrics(y, p, threshold)
            rows.append(
                {
                    "group": key,
                    "value": str(value),
                    "n_cases": len(g),
                    "n_positive": int(y.sum()),
                    "auc": auc(y, p) if len(np.unique(y)) == 2 else float("nan"),
                    "sensitivity": cm["sensitivity"],
                    "specificity": cm["specificity"],
                }
            )
    return pd.DataFrame(rows)


def _eval_sets(cases: pd.DataFrame) -> dict[str, pd.DataFrame]:
    sets = {}
    if (cases["split"] == "test").any():
        sets["test"] = cases[cases["split"] == "test"]
    ext = cases[cases["split"] == "external"]
    for site, g in ext.groupby("site", sort=True):
        sets[f"external_{site}"] = g
    if len(ext):
        sets["external"] = ext
    if not sets:
        raise InputError("no test or external cases to evaluate: check split.csv")
    return sets


def evaluate(
    *,
    checkpoint: Checkpoint,
    frame: pd.DataFrame,
    data_dir: str | Path,
    bootstrap: int = 1000,
    fixed_sensitivity: float = 0.90,
    temperature_scaling: bool = True,
    gradcam_per_class: int = 4,
    tsne: bool = True,
    seed: int = 7,
    device: str | None = None,
    batch_size: int = 64,
    heatmap_method: str = "gradcam",
    heatmap_layer: str | None = None,
    heatmap_target: str = "label",
    heatmap_threshold: float = 0.5,
    shortcut_probe_on: bool = True,
    ood_quantile: float | None = 0.99,
) -> Evaluation:
    """Evaluate ``checkpoint`` on ``frame`` (load_frame output with val, test/external rows and
    train rows for the clinical baseline); see the module doc. ``heatmap_*``: the explanation's
    method, layer (None: the last convolutional stage), target class and IoU threshold
    (:mod:`bonebase.model.explain_eval`); ``shortcut_probe_on``: linear probes on the features
    (:mod:`bonebase.model.shortcut`); ``ood_quantile``: the out-of-distribution detector's
    threshold as a quantile of the validation images' scores (None: none;
    :mod:`bonebase.model.ood`)."""
    info = {k: v for k, v in checkpoint.to_dict().items() if k not in ("state_dict",)}
    if checkpoint.num_classes > 2:
        # More than two classes (normal_benign_malignant): the most probable class decides;
        # per-class precision/recall, confusion matrix and one-vs-rest AUCs (H5's module).
        block = evaluate_classes(checkpoint=checkpoint, frame=frame, data_dir=data_dir,
                                 bootstrap=bootstrap, seed=seed, device=device,
                                 batch_size=batch_size)  # fmt: skip
        return Evaluation(
            metrics=_clean({"task": checkpoint.task, "per_class": block, **flat_metrics(block)}),
            roc=pd.DataFrame(), cases={}, subgroups=pd.DataFrame(), checkpoint=info,
        )  # fmt: skip
    net = checkpoint.network()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = frame[frame["split"].isin(["val", "test", "external"])].reset_index(drop=True)
    ds = make_dataset(rows, data_dir, image_size=checkpoint.image_size)
    logits, feats = predict(
        net,
        rows,
        data_dir,
        image_size=checkpoint.image_size,
        batch_size=batch_size,
        device=dev,
        features_of=head_layer(net, checkpoint.arch),
        dataset=ds,
    )
    net = net.cpu()
    cases = case_logits(rows, logits)
    z = cases[["logit0", "logit1"]].to_numpy()
    val = cases["split"] == "val"
    if cases.loc[val, "y"].nunique() < 2:
        raise InputError("the val split needs both classes to choose thresholds; re-split")
    temperature = fit_temperature(z[val], cases.loc[val, "y"]) if temperature_scaling else 1.0
    cases["prob"] = apply_temperature(z, temperature)[:, 1]
    yv, pv = cases.loc[val, "y"].to_numpy(), cases.loc[val, "prob"].to_numpy()
    thresholds = {
        "youden": youden_threshold(yv, pv),
        "fixed_sens": threshold_at_sensitivity(yv, pv, fixed_sensitivity),
    }
    train_cases = frame[frame["split"] == "train"].drop_duplicates(["site", "case_id"])
    cases["baseline"] = baseline_scores(fit_baseline(train_cases, seed=seed), cases)
    metrics: dict = {
        "task": checkpoint.task,
        "temperature": temperature,
        "threshold_youden": thresholds["youden"],
        "threshold_fixed_sens": thresholds["fixed_sens"],
        "fixed_sensitivity_target": fixed_sensitivity,
        "val": {"n_cases": int(val.sum()), "auc": auc(yv, pv)},
    }
    metrics["per_class"] = summarise_classes(checkpoint, cases, bootstrap=bootstrap, seed=seed)
    sets = _eval_sets(cases)
    roc_rows = []
    for name, g in sets.items():
        y, p, b = g["y"].to_numpy(), g["prob"].to_numpy(), g["baseline"].to_numpy()
        metrics[name] = set_metrics(y, p, b, thresholds=thresholds, bootstrap=bootstrap, seed=seed)
        if len(np.unique(y)) == 2:
            for model, s in (("model", p), ("baseline", b)):
                fpr, tpr, thr = roc_curve(y, s)
                roc_rows.append(
                    pd.DataFrame(
                        {"set": name, "model": model, "fpr": fpr, "tpr": tpr, "threshold": thr}
                    )
                )
    pooled = cases[cases["split"].isin(["test", "external"])]
    subgroups = subgroup_metrics(pooled, threshold=thresholds["youden"])
    # Image-level probabilities with the same temperature for Grad-CAM's sample.
    prob_img = apply_temperature(logits, temperature)[:, 1]
    ev_idx = np.flatnonzero(rows["split"].isin(["test", "external"]).to_numpy())
    ev_rows = rows.iloc[ev_idx].reset_index(drop=True)
    ev_rows = ev_rows.assign(age_band=_age_band(ev_rows["age"]))
    sizes = [png_side(Path(data_dir) / rel) for rel in ev_rows["image"]]
    explainer = Explainer(net, checkpoint.arch, method=heatmap_method, layer=heatmap_layer)

    def image(i: int) -> torch.Tensor:
        return ds[int(ev_idx[i])]["image"]

    pred_img = (prob_img[ev_idx] >= thresholds["youden"]).astype(int)
    explanation, mean_maps = explain_images(
        explainer, ev_rows, image, sizes, pred_img, image_size=checkpoint.image_size,
        target=heatmap_target, threshold=heatmap_threshold, bootstrap=bootstrap, seed=seed,
    )  # fmt: skip
    metrics["explanation"] = explanation
    headline = explanation.get("external", explanation.get("test", {})).get("all", {})
    for key in ("pointing_game", "weighting_game", "iou"):
        metrics[key] = headline.get(key, float("nan"))
    metrics["pointing_game_n"] = headline.get("n", 0)
    shown = sample_gallery(
        explainer, ev_rows, image, sizes, prob_img[ev_idx], thresholds["youden"],
        gradcam_per_class, seed, image_size=checkpoint.image_size, target=heatmap_target,
    )  # fmt: skip
    if shortcut_probe_on and feats is not None and len(ev_idx) > 10:
        metrics["shortcut_probe"] = shortcut_probe(feats[ev_idx], ev_rows, seed=seed)
    val_idx = np.flatnonzero((rows["split"] == "val").to_numpy())
    if ood_quantile and feats is not None and len(val_idx) >= 5:
        ext_idx = np.flatnonzero((rows["split"] == "external").to_numpy())
        metrics["ood"] = ood_metrics(
            net, head_layer(net, checkpoint.arch), val=feats[val_idx], external=feats[ext_idx],
            image_size=checkpoint.image_size, quantile=ood_quantile, seed=seed,
        )  # fmt: skip
    tsne_frame = None
    if tsne and feats is not None and len(ev_idx) > 5:
        perplexity = float(min(30.0, (len(ev_idx) - 1) / 3))
        xy = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(feats[ev_idx])
        tsne_frame = pd.DataFrame(
            {"x": xy[:, 0], "y": xy[:, 1], "label": ev_rows["y"], "site": ev_rows["site"]}
        )
    return Evaluation(
        metrics=_clean(metrics),
        roc=pd.concat(roc_rows, ignore_index=True) if roc_rows else pd.DataFrame(),
        cases=dict(sets, val=cases[val]),
        subgroups=subgroups,
        gallery=shown,
        tsne=tsne_frame,
        checkpoint=info,
        mean_maps=mean_maps,
    )


def write_outputs(ev: Evaluation, *, metrics_json: Path, roc_csv: Path, report_html: Path) -> None:
    """Write metrics.json (flat per set), roc.csv (for ``dvc plots``) and the HTML report."""
    from bonebase.model.report import render_report

    for p in (metrics_json, roc_csv, report_html):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    Path(metrics_json).write_text(json.dumps(ev.metrics, indent=2, sort_keys=True) + "\n")
    ev.roc.to_csv(roc_csv, index=False, lineterminator="\n", float_format="%.6g")
    Path(report_html).write_text(render_report(ev), encoding="utf-8")
