"""The report's explanation sections: heat-map scores with CIs, average maps (what the model
looks at, by class, site and age band) and the shortcut probe."""

from __future__ import annotations

import html

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SCORE_KEYS = ("pointing_game", "weighting_game", "iou")


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def score_table(explanation: dict) -> pd.DataFrame:
    """One row per (set, group): n, each score with its 95% CI, the layer's ceiling."""
    rows = []
    for set_name in ("test", "external"):
        for group, s in (explanation.get(set_name) or {}).items():
            row = {"set": set_name, "group": group, "n": s.get("n")}
            for k in SCORE_KEYS:
                row[k] = (f"{_fmt(s.get(k))} ({_fmt(s.get(k + '_lo'))}–"
                          f"{_fmt(s.get(k + '_hi'))})")
            row["pointing ceiling"] = _fmt(s.get("pointing_ceiling"))
            row["lesion area"] = _fmt(s.get("lesion_area"))
            rows.append(row)
    return pd.DataFrame(rows)


def explanation_html(metrics: dict, mean_maps: dict, png, table) -> str:
    """Scores table and the average-map figure (``png``/``table``: the report's helpers)."""
    e = metrics.get("explanation") or {}
    head = (
        f"<p>Method <b>{html.escape(str(e.get('method')))}</b> on layer "
        f"<b>{html.escape(str(e.get('layer')))}</b> ({e.get('cells')} x {e.get('cells')} cells), "
        f"map of the {html.escape(str(e.get('target')))} class. Pointing game: the map's peak "
        "inside the lesion; weighting game: share of the map's energy inside the lesion; IoU: "
        f"the map above {_fmt(e.get('threshold'), 2)} x its maximum against the lesion. "
        "Means with percentile-bootstrap 95% CIs. <i>pointing ceiling</i>: share of lesions that "
        "hold a cell centre of this layer's grid (the best pointing game it can reach); "
        "<i>lesion area</i>: mean share of the image the lesion covers (the weighting game of "
        "a flat map).</p>"
    )
    frame = score_table(e)
    body = table(frame) if not frame.empty else '<p class="note">no image with a lesion</p>'
    groups = [k for k in mean_maps if not k.startswith(("lesion ", "image "))]
    if not groups:
        return head + body
    cols = min(len(groups), 6)
    nrows = int(np.ceil(len(groups) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.4 * cols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, key in zip(axes.flat, groups, strict=False):
        ax.imshow(mean_maps[f"image {key}"], cmap="gray")
        ax.imshow(mean_maps[key], cmap="jet", alpha=0.4)
        ax.contour(mean_maps[f"lesion {key}"], levels=[0.25], colors="lime", linewidths=0.8)
        ax.set_title(key, fontsize=8)
    return (
        head + body + "<h3>Average heat map (external site) by class, site and age band</h3>"
        "<p>Grey: the average radiograph; colour: the average map; green: where a quarter of "
        "the group's lesions lie. A map far from the green outline looks elsewhere.</p>" + png(fig)
    )


def shortcut_html(metrics: dict, table) -> str:
    """The shortcut probe's AUCs and verdict."""
    p = metrics.get("shortcut_probe")
    if not p:
        return '<p class="note">shortcut probe not computed (disabled or too few images)</p>'
    rows = [
        {"target": "label", "probe AUC": p.get("probe_auc_label"), "label from it alone": None},
        {"target": "site", "probe AUC": p.get("probe_auc_site"),
         "label from it alone": p.get("label_from_site_auc")},
        {"target": "age band", "probe AUC": p.get("probe_auc_age_band"),
         "label from it alone": p.get("label_from_age_band_auc")},
    ]
    verdict = (
        f"<p><b>Suspected shortcut through: {html.escape(', '.join(p['suspect']))}</b> (the "
        "features read it at least as well as the label, and it predicts the label).</p>"
        if p.get("suspect") else "<p>No variable is read better than the label.</p>"
    )
    return (
        f"<p>Linear probe (logistic regression, {p.get('n')} test and external images, folds "
        "grouped by case) on the penultimate features: cross-validated AUC (macro one-vs-rest "
        "for site and age band). <i>label from it alone</i>: AUC of the label's rate per value "
        "(how much a shortcut through that variable could score).</p>"
        + table(pd.DataFrame(rows)) + verdict
    )


def ood_html(metrics: dict) -> str:
    """The out-of-distribution detector's calibration and its two rates."""
    o = metrics.get("ood")
    if not o:
        return '<p class="note">no out-of-distribution detector (disabled or too few images)</p>'
    fa, det = o.get("false_alarm_external"), o.get("detection_unrelated")
    return (
        "<p>Score: Mahalanobis distance of the penultimate features in their top principal "
        "components plus the unexplained remainder, fitted on the validation images "
        f"(n = {o.get('n_val')}); threshold {_fmt(o.get('threshold'), 2)} = their "
        f"{_fmt(o.get('quantile'), 2)} quantile. False alarms on the external site's radiographs: "
        f"<b>{_fmt(fa)}</b> (n = {o.get('n_external', 0)}); detected among generated images that "
        f"are not bone radiographs (noise, blur, chest-like, checkerboard, stripes, flat): "
        f"<b>{_fmt(det)}</b> (n = {o.get('n_unrelated')}). The served answer flags an input "
        "above the threshold, and a DICOM whose Modality or BodyPartExamined is not a limb "
        "radiograph.</p>"
    )


__all__ = ["explanation_html", "ood_html", "score_table", "shortcut_html"]
