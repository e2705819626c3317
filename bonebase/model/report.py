"""The evaluation report: one self-contained HTML file (figures embedded as base64 PNGs).

Sections (their ids are stable, tests look for them): provenance, training, discrimination,
operating-points, calibration, baseline, subgroups, gradcam, shortcut, ood, tsne.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from bonebase import fonts  # noqa: E402
from bonebase.model.explain_report import (  # noqa: E402
    explanation_html,
    ood_html,
    shortcut_html,
)
from bonebase.model.multiclass_eval import render_section  # noqa: E402
from bonebase.stats import reliability_curve  # noqa: E402

SECTIONS = (
    ("provenance", "Model and data"),
    ("training", "Training"),
    ("discrimination", "Discrimination: ROC and PR"),
    ("operating-points", "Operating points (thresholds chosen on validation)"),
    ("calibration", "Calibration"),
    ("baseline", "Clinical-only baseline"),
    ("subgroups", "Subgroups"),
    ("gradcam", "Heat maps: pointing game, weighting game, IoU"),
    ("shortcut", "Shortcut probe: site and age band vs label"),
    ("ood", "Inputs unlike the training data"),
    ("tsne", "t-SNE of penultimate features"),
)
fonts.use_in_matplotlib()  # diagnosis names, sites and classes may be Chinese (#25)
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;
padding:2px 6px;text-align:right}th{background:#f3f3f3}img{max-width:100%}.note{color:#666}"""


def _png(fig) -> str:
    fonts.check_figure(fig)  # Chinese text without a CJK font: a clear error, not boxes
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–", border=0)


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def _set_names(ev) -> list[str]:
    return [k for k in ev.cases if k != "val"]


def _training(ev) -> str:
    hist = pd.DataFrame(ev.checkpoint.get("history", []))
    if hist.empty:
        return '<p class="note">no training history in the checkpoint</p>'
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].plot(hist["epoch"], hist["train_loss"], marker="o")
    ax[0].set(xlabel="epoch", ylabel="train loss")
    ax[1].plot(hist["epoch"], hist["val_auc"], marker="o", color="C1")
    ax[1].set(xlabel="epoch", ylabel="validation AUC (cases)")
    best = ev.checkpoint.get("train_params", {}).get("best_epoch")
    return f"<p>best epoch: {best}</p>" + _png(fig) + _table(hist)


def _discrimination(ev) -> str:
    names = _set_names(ev)
    rows = []
    for name in names:
        m = ev.metrics.get(name, {})
        rows.append(
            {
                "set": name,
                "cases": m.get("n_cases"),
                "positive": m.get("n_positive"),
                "AUC": m.get("auc"),
                "DeLong 95% CI": f"{_fmt(m.get('auc_delong_lo'))}–{_fmt(m.get('auc_delong_hi'))}",
                "bootstrap 95% CI": f"{_fmt(m.get('auc_boot_lo'))}–{_fmt(m.get('auc_boot_hi'))}",
                "PR-AUC": m.get("pr_auc"),
            }
        )
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    for i, name in enumerate(names):
        r = ev.roc[(ev.roc["set"] == name)] if not ev.roc.empty else ev.roc
        for model, style in (("model", "-"), ("baseline", ":")):
            part = r[r["model"] == model] if len(r) else r
            if len(part):
                ax[0].plot(part["fpr"], part["tpr"], style, color=f"C{i}", label=f"{name} {model}")
        g = ev.cases[name]
        if g["y"].nunique() == 2:
            prec, rec, _ = precision_recall_curve(g["y"], g["prob"])
            ax[1].plot(rec, prec, color=f"C{i}", label=name)
    ax[0].plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax[0].set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (dotted: baseline)")
    ax[1].set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
    ax[0].legend(fontsize=7)
    ax[1].legend(fontsize=7)
    return _table(pd.DataFrame(rows)) + _png(fig)


def _operating_points(ev) -> str:
    m = ev.metrics
    head = (
        f"<p>Youden threshold {_fmt(m.get('threshold_youden'))}; fixed-sensitivity threshold "
        f"{_fmt(m.get('threshold_fixed_sens'))} (target {_fmt(m.get('fixed_sensitivity_target'), 2)} "
        "on validation). Both chosen on validation cases only.</p>"
    )
    rows, cms = [], []
    for name in _set_names(ev):
        for thr in ("youden", "fixed_sens"):
            s = m.get(name, {})
            if f"{thr}_tp" not in s:
                continue
            keys = ("sensitivity", "specificity", "ppv", "npv", "accuracy")
            rows.append({"set": name, "threshold": thr, **{k: s[f"{thr}_{k}"] for k in keys}})
            cm = pd.DataFrame(
                [[s[f"{thr}_tn"], s[f"{thr}_fp"]], [s[f"{thr}_fn"], s[f"{thr}_tp"]]],
                index=["true 0", "true 1"],
                columns=["called 0", "called 1"],
            )
            cms.append(f"<div><b>{html.escape(name)} / {thr}</b>{cm.to_html(border=0)}</div>")
    grid = '<div style="display:flex;flex-wrap:wrap;gap:1em">' + "".join(cms) + "</div>"
    return head + _table(pd.DataFrame(rows)) + "<h3>Confusion matrices</h3>" + grid


def _calibration(ev) -> str:
    names = _set_names(ev)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    rows = []
    for i, name in enumerate(names):
        g = ev.cases[name]
        curve = reliability_curve(g["y"].to_numpy(), g["prob"].to_numpy(), n_bins=10)
        ax.plot(
            curve.mean_predicted, curve.fraction_positive, marker="o", color=f"C{i}", label=name
        )
        s = ev.metrics.get(name, {})
        rows.append({"set": name, "ECE": s.get("ece"), "Brier": s.get("brier")})
    ax.set(xlabel="mean predicted probability", ylabel="observed fraction positive")
    ax.legend(fontsize=7)
    t = ev.metrics.get("temperature")
    return (
        f"<p>temperature (fitted on validation): {_fmt(t)}</p>"
        + _table(pd.DataFrame(rows))
        + _png(fig)
    )


def _baseline(ev) -> str:
    rows = []
    for name in _set_names(ev):
        s = ev.metrics.get(name, {})
        rows.append(
            {
                "set": name,
                "model AUC": s.get("auc"),
                "baseline AUC": s.get("baseline_auc"),
                "baseline 95% CI": f"{_fmt(s.get('baseline_auc_lo'))}–{_fmt(s.get('baseline_auc_hi'))}",
                "ΔAUC": s.get("delta_auc_vs_baseline"),
                "DeLong p": s.get("delong_p_vs_baseline"),
            }
        )
    return (
        "<p>Logistic regression on age, sex and location region, fitted on the train cases; "
        "paired DeLong test on the same cases.</p>" + _table(pd.DataFrame(rows))
    )


def _gradcam(ev) -> str:
    head = explanation_html(ev.metrics, getattr(ev, "mean_maps", {}) or {}, _png, _table)
    head += "<h3>Samples: correct and wrong, per class</h3>"
    if not ev.gallery:
        return head + '<p class="note">no images to show</p>'
    cols = 4
    nrows = int(np.ceil(len(ev.gallery) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3 * cols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, ev.gallery, strict=False):
        ax.imshow(item["image"], cmap="gray")
        ax.imshow(item["heat"], cmap="jet", alpha=0.35)
        if item["box"] is not None:
            x0, y0, x1, y1 = item["box"]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1))
        word = "correct" if item["correct"] else "wrong"
        ax.set_title(f"y={item['label']} p={item['prob']:.2f} {word} {item['site']}", fontsize=8)
    return head + _png(fig)


def _tsne(ev) -> str:
    if ev.tsne is None:
        return '<p class="note">t-SNE not computed (disabled or too few images)</p>'
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
    for label, g in ev.tsne.groupby("label"):
        ax[0].scatter(g["x"], g["y"], s=6, label=f"class {label}")
    for site, g in ev.tsne.groupby("site"):
        ax[1].scatter(g["x"], g["y"], s=6, label=str(site))
    ax[0].set_title("by class")
    ax[1].set_title("by site (clusters by site = site shortcut risk)")
    ax[0].legend(fontsize=7)
    ax[1].legend(fontsize=7)
    return _png(fig)


def _provenance(ev) -> str:
    c = ev.checkpoint
    keys = ("task", "arch", "classes", "dataset_version", "code_revision", "threshold", "created")
    rows = [{"field": k, "value": str(c.get(k))} for k in keys]
    rows.append({"field": "preprocessing", "value": str(c.get("preprocessing"))})
    rows.append({"field": "train params", "value": str(c.get("train_params"))})
    return _table(pd.DataFrame(rows))


def render_report(ev) -> str:
    """The report of an :class:`~bonebase.model.evaluate.Evaluation` as an HTML string."""
    builders = {
        "provenance": _provenance,
        "training": _training,
        "discrimination": _discrimination,
        "operating-points": _operating_points,
        "calibration": _calibration,
        "baseline": _baseline,
        "subgroups": lambda e: _table(e.subgroups),
        "gradcam": _gradcam,
        "shortcut": lambda e: shortcut_html(e.metrics, _table),
        "ood": lambda e: ood_html(e.metrics),
        "tsne": _tsne,
    }
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>bonebase evaluation: {html.escape(str(ev.metrics.get('task')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Evaluation report: {html.escape(str(ev.metrics.get('task')))}</h1>",
        "<p>Unit of analysis: the case (mean logits over its radiographs).</p>",
    ]
    for sid, title in SECTIONS:
        parts.append(f'<h2 id="{sid}">{html.escape(title)}</h2>{builders[sid](ev)}')
    if "per_class" in ev.metrics:
        parts.append(render_section(ev.metrics["per_class"]))
    parts.append("</body></html>")
    return "\n".join(parts)
