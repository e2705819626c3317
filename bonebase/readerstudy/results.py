"""A study's results: per reader and arm AUC, sensitivity and specificity at the study's
threshold and reading time; the Obuchowski-Rockette analysis aided vs unaided
(``bonebase.stats.mrmc``); the model's ROC curve; the scores in the ``analyze`` CSV format.

Scores are on the readers' 0-100 scale: the model's probability is exported as 100 × p and the
study's threshold as 100 × the model's locked threshold, so ``bonebase reader-study analyze
scores.csv --threshold T`` on the export gives the same numbers as this module. Only readers
who answered every case in both arms enter the analysis; the others are named in ``excluded``.
"""

from __future__ import annotations

import io
import math
from statistics import median
from typing import Any

import numpy as np
import pandas as pd
from psycopg import Connection

from bonebase.readerstudy import store
from bonebase.stats.mrmc import analyze
from bonebase.stats.mrmc_data import COLUMNS, MODEL_READER
from bonebase.stats.roc import auc, confusion_metrics

ARMS = ("unaided", "aided")


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def scores_frame(conn: Connection, study: dict, *, complete_only: bool = True
                 ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(reader,modality,case,truth,score table incl. the model, complete readers, excluded)."""
    cases = store.study_cases(conn, study["id"])
    rows = store.answers(conn, study["id"])
    readers = [r["reader"] for r in store.study_readers(conn, study["id"])]
    counts: dict[str, int] = {r: 0 for r in readers}
    for a in rows:
        counts[a["reader"]] += 1
    complete = [r for r in readers if counts[r] == 2 * len(cases)]
    excluded = [r for r in readers if r not in complete]
    keep = set(complete) if complete_only else set(readers)
    table = [(a["reader"], a["arm"], a["case"], int(a["truth"]), float(a["score"]))
             for a in rows if a["reader"] in keep]
    for arm in ARMS:  # the model scores every case the same way in both arms
        table += [(MODEL_READER, arm, c["label"], int(c["truth"]), 100.0 * c["probability"])
                  for c in cases]
    # Aided first: the analyser reports differences as first - second modality, so the
    # model's help reads as a positive "aided - unaided".
    table.sort(key=lambda row: (ARMS.index(row[1]) * -1, row[0] == MODEL_READER, row[0], row[2]))
    return pd.DataFrame(table, columns=list(COLUMNS)), complete, excluded


def export_csv(conn: Connection, study: dict) -> str:
    """The complete readers' scores and the model's, as ``bonebase reader-study analyze``
    reads them (floats written so that they read back exactly)."""
    frame, _, _ = scores_frame(conn, study)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def study_threshold(study: dict) -> float:
    """The study's threshold on the 0-100 score scale."""
    return 100.0 * float(study["threshold"])


def _roc_points(truth: np.ndarray, score: np.ndarray) -> list[tuple[float, float]]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(truth, score, drop_intermediate=True)
    return [(float(f), float(t)) for f, t in zip(fpr, tpr, strict=True)]


def results(conn: Connection, name: str) -> dict[str, Any]:
    """Everything the results page and ``reader-study results`` show (JSON-ready)."""
    study = store.get_study(conn, name)
    thr = study_threshold(study)
    cases = store.study_cases(conn, study["id"])
    truth = np.array([c["truth"] for c in cases])
    model_score = np.array([100.0 * c["probability"] for c in cases])
    model_cm = confusion_metrics(truth, model_score, thr)
    frame, complete, excluded = scores_frame(conn, study, complete_only=False)
    rows = store.answers(conn, study["id"])
    per_reader = []
    for reader in [r["reader"] for r in store.study_readers(conn, study["id"])]:
        for arm in ARMS:
            mine = [a for a in rows if a["reader"] == reader and a["arm"] == arm]
            entry: dict[str, Any] = {"reader": reader, "arm": arm, "answered": len(mine),
                                     "of": len(cases), "complete": reader in complete,
                                     "corrections": sum(a["corrections"] for a in mine)}
            if mine:
                y = np.array([a["truth"] for a in mine])
                s = np.array([float(a["score"]) for a in mine])
                cm = confusion_metrics(y, s, thr)
                entry.update(
                    auc=_num(auc(y, s)) if len(set(y.tolist())) == 2 else None,
                    sensitivity=_num(cm["sensitivity"]), specificity=_num(cm["specificity"]),
                    median_seconds=float(median(a["seconds"] for a in mine)),
                    total_seconds=float(sum(a["seconds"] for a in mine)))
            per_reader.append(entry)
    out: dict[str, Any] = {
        "study": {k: study[k] for k in ("name", "task", "dataset_version", "split", "model_id",
                                        "model_sha256", "washout_days", "seed",
                                        "allow_corrections", "created_by")},
        "created_at": study["created_at"].isoformat(),
        "threshold": thr,
        "n_cases": len(cases),
        "n_positive": int(truth.sum()),
        "complete_readers": complete,
        "excluded_readers": excluded,
        "per_reader": per_reader,
        "model": {"auc": _num(auc(truth, model_score)),
                  "sensitivity": _num(model_cm["sensitivity"]),
                  "specificity": _num(model_cm["specificity"]),
                  "roc": _roc_points(truth, model_score)},
        "analysis": None,
    }
    if len(complete) >= 2:
        humans_and_model = frame[frame["reader"].isin([*complete, MODEL_READER])]
        out["analysis"] = analyze(humans_and_model, threshold=thr)
    else:
        out["analysis_missing"] = (f"{len(complete)} reader(s) answered every case in both arms; "
                                   "the OR analysis needs at least two")
    return out


__all__ = ["export_csv", "results", "scores_frame", "study_threshold"]
