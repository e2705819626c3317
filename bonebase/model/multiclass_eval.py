"""Per-class evaluation of a checkpoint on its evaluation sets, and the report's section for it.

``per_class_sets(cases, classes, threshold=...)`` takes one row per case with ``y``, ``split``,
``site`` and the mean logits ``logit0..logit{k-1}`` (:func:`bonebase.model.infer.case_logits`)
and gives :func:`bonebase.model.multiclass.class_metrics` for val, test, each external site and
all external sites pooled. A binary model's class is decided at its locked threshold on
P(class 1); a model of more classes takes the most probable class.

``evaluate_classes`` runs a checkpoint over ``load_frame`` rows first; ``render_section`` is the
HTML of the evaluation report's "per-class" section (tables, confusion matrices, and for the
BTXRD tasks the paper's figures beside ours with how the splits differ).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from bonebase.errors import InputError
from bonebase.model.checkpoint import Checkpoint
from bonebase.model.infer import case_logits, predict, softmax
from bonebase.model.multiclass import PAPER_BTXRD, SPLIT_NOTE, class_metrics, paper_comparison

# Tasks whose data is BTXRD's: the report quotes the paper beside them.
BTXRD_TASKS = ("normal_benign_malignant",)


def _sets(cases: pd.DataFrame) -> dict[str, pd.DataFrame]:
    sets = {}
    for split in ("val", "test"):
        if (cases["split"] == split).any():
            sets[split] = cases[cases["split"] == split]
    external = cases[cases["split"] == "external"]
    for site, group in external.groupby("site", sort=True):
        sets[f"external_{site}"] = group
    if len(external) and external["site"].nunique() > 1:
        sets["external"] = external
    return sets


def per_class_sets(
    cases: pd.DataFrame,
    classes: Sequence[str],
    *,
    threshold: float | None = None,
    bootstrap: int = 0,
    seed: int = 7,
) -> dict[str, dict]:
    """Per evaluation set (val, test, external_<site>, external): class_metrics of its cases."""
    k = len(classes)
    columns = [f"logit{c}" for c in range(k)]
    missing = [c for c in (*columns, "y", "split", "site") if c not in cases]
    if missing:
        raise InputError(f"case table lacks {missing}: the model has {k} classes ({classes})")
    if k == 2 and threshold is None:
        raise InputError("a binary model decides at its threshold: pass threshold")
    out = {}
    for name, group in _sets(cases).items():
        prob = softmax(group[columns].to_numpy())
        pred = (prob[:, 1] >= threshold).astype(int) if k == 2 else None
        out[name] = class_metrics(
            group["y"].to_numpy(), prob, classes, pred=pred, bootstrap=bootstrap, seed=seed
        )
    return out


def evaluate_classes(
    *,
    checkpoint: Checkpoint,
    frame: pd.DataFrame,
    data_dir: str | Path,
    bootstrap: int = 200,
    seed: int = 7,
    device: str | None = None,
    batch_size: int = 64,
) -> dict:
    """Per-class figures of ``checkpoint`` on ``frame``'s val/test/external cases (load_frame
    rows): ``{"task", "classes", "decision", "sets": {set: class_metrics}}`` plus, for a BTXRD
    task, ``"paper"`` (the paper's figures) and ``"split_note"``."""
    rows = frame[frame["split"].isin(["val", "test", "external"])].reset_index(drop=True)
    if rows.empty:
        raise InputError("no val, test or external rows to evaluate: check split.csv")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    logits, _ = predict(
        checkpoint.network(), rows, data_dir, image_size=checkpoint.image_size,
        batch_size=batch_size, device=dev,
    )  # fmt: skip
    cases = case_logits(rows, logits)
    return summarise(checkpoint, cases, bootstrap=bootstrap, seed=seed)


def summarise(checkpoint: Checkpoint, cases: pd.DataFrame, *, bootstrap: int, seed: int) -> dict:
    """The per-class metrics block of a report from a checkpoint's case logits."""
    classes = checkpoint.classes
    out = {
        "task": checkpoint.task,
        "classes": classes,
        "decision": "most probable class"
        if checkpoint.threshold is None
        else f"P({classes[1]}) >= {checkpoint.threshold:.3f} (locked on validation)",
        "sets": per_class_sets(
            cases, classes, threshold=checkpoint.threshold, bootstrap=bootstrap, seed=seed
        ),
    }
    if checkpoint.task in BTXRD_TASKS:
        out["paper"] = PAPER_BTXRD
        out["split_note"] = SPLIT_NOTE
    return out


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(row: dict, key: str) -> str:
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    text = _num(row.get(key))
    return text if lo is None or hi is None else f"{text} [{_num(lo)}, {_num(hi)}]"


def _set_html(name: str, m: dict, paper: dict | None) -> str:
    classes = m["classes"]
    head = "".join(
        f"<th>{h}</th>"
        for h in ("class", "cases", "predicted", "precision [95% CI]", "recall [95% CI]",
                  "specificity", "F1", "AUC one-vs-rest")
    )  # fmt: skip
    if paper:
        head += "<th>paper precision</th><th>paper recall</th>"
    body = []
    for cls in classes:
        r = m["per_class"][cls]
        cells = [html.escape(cls), str(r["support"]), str(r["predicted"]), _ci(r, "precision"),
                 _ci(r, "recall"), _num(r["specificity"]), _num(r["f1"]), _num(r["auc_ovr"])]  # fmt: skip
        if paper:
            cells += [_num(paper["precision"].get(cls)), _num(paper["recall"].get(cls))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    cm_head = "".join(f"<th>pred. {html.escape(c)}</th>" for c in classes)
    cm_rows = "".join(
        f"<tr><th>true {html.escape(c)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for c, row in zip(classes, m["confusion_matrix"], strict=True)
    )
    macro = (
        f"accuracy {_num(m['accuracy'])}, balanced accuracy {_num(m['balanced_accuracy'])}, "
        f"macro F1 {_num(m['macro_f1'])}, macro one-vs-rest AUC "
        f"{_ci(m, 'macro_auc_ovr')}"
    )
    return (
        f"<h3>{html.escape(name)} ({m['n_cases']} cases)</h3><p>{macro}</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>"
        f"<table><tr><th></th>{cm_head}</tr>{cm_rows}</table>"
    )


def render_section(block: dict) -> str:
    """HTML of the report's per-class section from :func:`evaluate_classes`' output."""
    paper = block.get("paper")
    parts = [
        f"<p>Unit: the case (mean logits over its radiographs). Decision: "
        f"{html.escape(block['decision'])}. Confusion matrices: rows true class, columns "
        f"predicted.</p>"
    ]
    if paper:
        parts.append(
            f'<p class="note">Paper: {html.escape(paper["source"])}, {html.escape(paper["split"])}.'
            f" {html.escape(block['split_note'])}</p>"
        )
        test = block["sets"].get("test")
        if test:
            rows = paper_comparison(test)
            parts.append(
                "<table><tr><th>class</th><th>figure</th><th>ours (test)</th><th>paper</th></tr>"
                + "".join(
                    f"<tr><td>{r['class']}</td><td>{r['figure']}</td><td>{_num(r['ours'])}</td>"
                    f"<td>{_num(r['paper'])}</td></tr>"
                    for r in rows
                )
                + "</table>"
            )
    for name, m in block["sets"].items():
        parts.append(_set_html(name, m, paper))
    return (
        '<section id="per-class"><h2>Per-class precision and recall</h2>'
        + "".join(parts)
        + ("</section>")
    )


def flat_metrics(block: dict) -> dict[str, float | None]:
    """Per-class figures flattened for metrics.json / ``dvc metrics``: ``<set>.<class>.<figure>``."""
    out: dict[str, float | None] = {}
    for name, m in block["sets"].items():
        out[f"{name}.macro_auc_ovr"] = m["macro_auc_ovr"]
        out[f"{name}.balanced_accuracy"] = m["balanced_accuracy"]
        for cls, row in m["per_class"].items():
            for figure in ("precision", "recall"):
                out[f"{name}.{cls}.{figure}"] = row[figure]
    return out


__all__ = ["evaluate_classes", "flat_metrics", "per_class_sets", "render_section", "summarise"]
