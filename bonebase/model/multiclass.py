"""Per-class figures of a classifier with two or more classes, as BTXRD's paper reports them.

``class_metrics(y, prob, classes)`` gives, for one evaluation set of cases: the confusion
matrix (rows = true class, columns = predicted class), each class's precision, recall,
specificity, F1 and support, accuracy and balanced accuracy, each class's one-vs-rest AUC and
their macro mean, with percentile bootstrap CIs (cases resampled) for the per-class precision and
recall and the macro AUC. The predicted class is the most probable one (``argmax``), or what the
caller passes (a binary model's decision at its locked threshold).

``PAPER_BTXRD`` quotes the figures of the dataset's own paper so that a report can print them
beside ours, with ``SPLIT_NOTE``: the paper's classifier was tested on a random 80/20 split of
images, ours on patients (pseudo-patients of consecutive views) that training never saw and on a
whole centre held out, so the two sets of figures do not measure the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from bonebase.errors import InputError

# Yao et al., "A radiograph dataset for the classification, localization, and segmentation of
# primary bone tumors", Scientific Data 12, 88 (2025), doi:10.1038/s41597-024-04311-y: YOLOv8
# classifier, random 80/20 image split. Only the figures quoted in issue #20 are listed; the
# others are left out rather than guessed.
PAPER_BTXRD = {
    "source": "Yao et al., Sci Data 2025 (BTXRD), doi:10.1038/s41597-024-04311-y",
    "split": "random 80/20 split of images (views of one patient may fall on both sides)",
    "precision": {"normal": 0.913, "benign": 0.881, "malignant": 0.734},
    "recall": {"malignant": 0.839},
}
SPLIT_NOTE = (
    "BTXRD's paper tested on a random 80/20 split of images, so views of one patient can sit in "
    "both training and test; here the unit is the case (mean logits over its views), patients "
    "(pseudo-patients: same centre, age, sex and site, consecutive images) are in one split only, "
    "and a held-out centre is an external test set. Expect lower figures than the paper's, "
    "the external centre lowest."
)


def _check(y: np.ndarray, prob: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int)
    prob = np.asarray(prob, dtype=float)
    if prob.ndim == 1 and k == 2:
        prob = np.column_stack([1.0 - prob, prob])
    if prob.ndim != 2 or prob.shape != (len(y), k):
        raise InputError(
            f"class_metrics needs one probability per class and case: {len(y)} cases x {k} "
            f"classes, got shape {prob.shape}"
        )
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise InputError(f"class labels must be 0..{k - 1}; got {sorted(set(y.tolist()))}")
    return y, prob


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and specificity per class from a confusion matrix."""
    tp = np.diag(cm).astype(float)
    predicted, actual, total = cm.sum(0), cm.sum(1), cm.sum()
    precision = np.array([_ratio(t, p) for t, p in zip(tp, predicted, strict=True)])
    recall = np.array([_ratio(t, a) for t, a in zip(tp, actual, strict=True)])
    tn = total - predicted - actual + tp
    specificity = np.array([_ratio(n, total - a) for n, a in zip(tn, actual, strict=True)])
    return precision, recall, specificity


def _ovr_aucs(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    out = np.full(prob.shape[1], np.nan)
    for c in range(prob.shape[1]):
        positive = y == c
        if 0 < positive.sum() < len(y):
            out[c] = roc_auc_score(positive, prob[:, c])
    return out


def _macro(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _bootstrap(
    y: np.ndarray, prob: np.ndarray, pred: np.ndarray, k: int, *, n: int, seed: int
) -> dict[str, np.ndarray]:
    """Percentile 95% CIs of per-class precision and recall and of the macro AUC."""
    rng = np.random.default_rng(seed)
    prec, rec, macro = [], [], []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        cm = confusion_matrix(y[idx], pred[idx], labels=range(k))
        p, r, _ = _per_class(cm)
        prec.append(p)
        rec.append(r)
        macro.append(_macro(_ovr_aucs(y[idx], prob[idx])))

    def ci(samples: list) -> np.ndarray:
        arr = np.asarray(samples, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        lo = [np.nanpercentile(col, 2.5) if np.isfinite(col).any() else np.nan for col in arr.T]
        hi = [np.nanpercentile(col, 97.5) if np.isfinite(col).any() else np.nan for col in arr.T]
        return np.array([lo, hi])

    return {"precision": ci(prec), "recall": ci(rec), "macro_auc": ci(macro)[:, 0]}


def class_metrics(
    y: Sequence[int] | np.ndarray,
    prob: np.ndarray,
    classes: Sequence[str],
    *,
    pred: Sequence[int] | np.ndarray | None = None,
    bootstrap: int = 0,
    seed: int = 7,
) -> dict:
    """Per-class and overall figures of one set of cases; see the module doc.

    ``y``: true class index per case; ``prob``: (n, k) class probabilities (or, for two classes,
    P(class 1) alone); ``pred``: predicted class per case (default: argmax of ``prob``);
    ``bootstrap``: resamples for the CIs (0: none). Undefined figures (a class never predicted,
    absent from the set) are NaN.
    """
    k = len(classes)
    if k < 2:
        raise InputError("class_metrics needs at least two class names")
    y, prob = _check(y, prob, k)
    pred = prob.argmax(1) if pred is None else np.asarray(pred).astype(int)
    if len(pred) != len(y):
        raise InputError(f"pred has {len(pred)} entries for {len(y)} cases")
    cm = confusion_matrix(y, pred, labels=range(k))
    precision, recall, specificity = _per_class(cm)
    f1 = np.array(
        [_ratio(2 * p * r, p + r) if np.isfinite(p + r) else np.nan
         for p, r in zip(precision, recall, strict=True)]
    )  # fmt: skip
    aucs = _ovr_aucs(y, prob) if len(y) else np.full(k, np.nan)
    ci = _bootstrap(y, prob, pred, k, n=bootstrap, seed=seed) if bootstrap and len(y) else None
    per_class = {}
    for c, name in enumerate(classes):
        row = {
            "support": int(cm[c].sum()),
            "predicted": int(cm[:, c].sum()),
            "precision": precision[c],
            "recall": recall[c],
            "specificity": specificity[c],
            "f1": f1[c],
            "auc_ovr": aucs[c],
        }
        if ci is not None:
            row.update(
                precision_lo=ci["precision"][0, c],
                precision_hi=ci["precision"][1, c],
                recall_lo=ci["recall"][0, c],
                recall_hi=ci["recall"][1, c],
            )
        per_class[name] = {key: _finite(v) for key, v in row.items()}
    out = {
        "classes": list(classes),
        "n_cases": int(len(y)),
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class": per_class,
        "accuracy": _finite(_ratio(np.trace(cm), cm.sum())),
        "balanced_accuracy": _finite(_macro(recall)),
        "macro_precision": _finite(_macro(precision)),
        "macro_recall": _finite(_macro(recall)),
        "macro_f1": _finite(_macro(f1)),
        "macro_auc_ovr": _finite(_macro(aucs)),
    }
    if ci is not None:
        out["macro_auc_ovr_lo"], out["macro_auc_ovr_hi"] = (_finite(v) for v in ci["macro_auc"])
    return out


def _finite(value) -> float | int | None:
    """JSON-safe number: NaN → None."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if np.isfinite(value) else None


def paper_comparison(metrics: dict) -> list[dict]:
    """Rows (class, figure, ours, paper) for the classes and figures BTXRD's paper reports."""
    rows = []
    for figure in ("precision", "recall"):
        for name, paper in PAPER_BTXRD[figure].items():
            ours = metrics.get("per_class", {}).get(name, {}).get(figure)
            rows.append({"class": name, "figure": figure, "ours": ours, "paper": paper})
    return rows


__all__ = ["PAPER_BTXRD", "SPLIT_NOTE", "class_metrics", "paper_comparison"]
