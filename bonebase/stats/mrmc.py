"""Multi-reader multi-case (MRMC) reader-study analysis with the Obuchowski-Rockette (OR) model.

Figure of merit: empirical (trapezoidal = Wilcoxon) AUC per reader and modality. The OR error
covariances (Var, Cov1 same reader / different modality, Cov2 different reader / same modality,
Cov3 both different) are averaged from a case-jackknife (default) or DeLong covariance matrix.
Tests follow Hillis 2007/2008 (Stat Med 26:596; Acad Radiol 15:647), as in MRMCaov and RJafroc:

- random readers, random cases (RRRC): F = MS(T) / [MS(TR) + r max(Cov2 - Cov3, 0)] with
  Hillis's denominator df = den^2 / (MS(TR)^2 / ((t-1)(r-1)));
- fixed readers, random cases (FRRC): chi2 = (t-1) MS(T) / [Var - Cov1 + (r-1) max(Cov2-Cov3, 0)];
- random readers, fixed cases (RRFC): F = MS(T) / MS(TR) on (t-1, (t-1)(r-1)) df.

With more than two modalities each analysis reports the global test and all pairwise
differences (``pairwise``); ``difference``/``ci`` are filled only for exactly two modalities.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from bonebase.errors import InputError
from bonebase.stats.mrmc_data import (
    MODEL_READER,
    ReaderStudy,
    model_scores,
    read_csv,
    to_study,
    validate_frame,
)
from bonebase.stats.mrmc_report import format_report
from bonebase.stats.roc import confusion_metrics, delong_covariance, placements

__all__ = ["analyze", "analyze_csv", "format_report", "jackknife_covariance", "or_components"]

Covariance = Literal["jackknife", "delong"]


def jackknife_covariance(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their leave-one-case-out jackknife covariance (k, k) for scores (k, n).

    Leaving out positive i gives AUC_(i) = (m AUC - V10_i) / (m - 1), and a negative j gives
    (n0 AUC - V01_j) / (n0 - 1), so all n jackknife AUCs come from one O(n log n) ranking.
    """
    aucs, v10, v01 = placements(truth, scores)
    m, n0 = v10.shape[1], v01.shape[1]
    if m < 2 or n0 < 2:
        raise InputError("the jackknife needs at least 2 diseased and 2 non-diseased cases")
    pseudo = np.concatenate(
        [(m * aucs[:, None] - v10) / (m - 1), (n0 * aucs[:, None] - v01) / (n0 - 1)], axis=1
    )
    n = pseudo.shape[1]
    dev = pseudo - pseudo.mean(axis=1, keepdims=True)
    return aucs, (n - 1) / n * (dev @ dev.T)


def or_components(theta: np.ndarray, cov: np.ndarray) -> dict[str, float]:
    """OR mean squares and averaged error (co)variances.

    ``theta`` is (t modalities, r readers); ``cov`` is (t*r, t*r) in modality-major order.
    """
    t, r = theta.shape
    mod = np.repeat(np.arange(t), r)
    rdr = np.tile(np.arange(r), t)
    same_m, same_r = mod[:, None] == mod[None, :], rdr[:, None] == rdr[None, :]
    off = ~np.eye(t * r, dtype=bool)
    grand, m_mean, r_mean = theta.mean(), theta.mean(axis=1), theta.mean(axis=0)
    inter = theta - m_mean[:, None] - r_mean[None, :] + grand
    return {
        "ms_t": float(r * np.sum((m_mean - grand) ** 2) / (t - 1)),
        "ms_r": float(t * np.sum((r_mean - grand) ** 2) / (r - 1)),
        "ms_tr": float(np.sum(inter**2) / ((t - 1) * (r - 1))),
        "var": float(np.mean(np.diag(cov))),
        "cov1": float(np.mean(cov[~same_m & same_r])),
        "cov2": float(np.mean(cov[same_m & ~same_r & off])),
        "cov3": float(np.mean(cov[~same_m & ~same_r])),
    }


def _pairwise(
    means: np.ndarray, modalities: list[str], se: float, crit_dist: Any, stat_name: str
) -> list[dict[str, Any]]:
    q = float(crit_dist.ppf(0.975))
    out = []
    for a, b in combinations(range(len(modalities)), 2):
        diff = float(means[a] - means[b])
        stat = diff / se if se > 0 else (0.0 if diff == 0 else float(np.sign(diff) * np.inf))
        out.append(
            {
                "comparison": f"{modalities[a]} - {modalities[b]}",
                "difference": diff,
                "ci": [diff - q * se, diff + q * se],
                stat_name: stat,
                "p": float(2 * crit_dist.sf(abs(stat))),
            }
        )
    return out


def _with_pair(result: dict[str, Any], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    single = pairs[0] if len(pairs) == 1 else None
    result["difference"] = single["difference"] if single else None
    result["ci"] = single["ci"] if single else None
    result["pairwise"] = pairs
    return result


def or_tests(theta: np.ndarray, comp: dict[str, float], modalities: list[str]) -> dict[str, Any]:
    """RRRC, FRRC and RRFC analyses of the modality effect from OR components."""
    t, r = theta.shape
    means = theta.mean(axis=1)
    ms_t, ms_tr = comp["ms_t"], comp["ms_tr"]
    df1, df_tr = t - 1, (t - 1) * (r - 1)
    c23 = max(comp["cov2"] - comp["cov3"], 0.0)

    den = ms_tr + r * c23
    ddf = den**2 / (ms_tr**2 / df_tr) if ms_tr > 0 else float("inf")
    f = ms_t / den if den > 0 else float("nan")
    rrrc = {"f": f, "df_numerator": df1, "df_denominator": ddf, "p": float(stats.f.sf(f, df1, ddf))}
    _with_pair(rrrc, _pairwise(means, modalities, np.sqrt(2 / r * den), stats.t(ddf), "t"))

    den_fr = comp["var"] - comp["cov1"] + (r - 1) * c23
    chi2 = df1 * ms_t / den_fr if den_fr > 0 else float("nan")
    frrc = {"chi2": chi2, "df": df1, "p": float(stats.chi2.sf(chi2, df1))}
    _with_pair(frrc, _pairwise(means, modalities, np.sqrt(2 / r * den_fr), stats.norm(), "z"))

    f_fc = ms_t / ms_tr if ms_tr > 0 else float("nan")
    rrfc = {
        "f": f_fc,
        "df_numerator": df1,
        "df_denominator": df_tr,
        "df": df_tr,
        "p": float(stats.f.sf(f_fc, df1, df_tr)),
    }
    _with_pair(rrfc, _pairwise(means, modalities, np.sqrt(2 / r * ms_tr), stats.t(df_tr), "t"))
    return {"rrrc": rrrc, "frrc": frrc, "rrfc": rrfc}


def _operating_points(
    study: ReaderStudy, model: dict[str, np.ndarray], threshold: float
) -> dict[str, Any]:
    per_reader: dict[str, dict[str, dict[str, float]]] = {}
    for j, rdr in enumerate(study.readers):
        per_reader[rdr] = {}
        for i, mod in enumerate(study.modalities):
            cm = confusion_metrics(study.truth, study.scores[i, j], threshold)
            per_reader[rdr][mod] = {k: cm[k] for k in ("sensitivity", "specificity")}
    for mod, s in model.items():
        cm = confusion_metrics(study.truth, s, threshold)
        per_reader.setdefault(MODEL_READER, {})[mod] = {
            k: cm[k] for k in ("sensitivity", "specificity")
        }
    avg = {
        k: {
            m: float(np.mean([per_reader[r][m][k] for r in study.readers]))
            for m in study.modalities
        }
        for k in ("sensitivity", "specificity")
    }
    return {"threshold": threshold, **avg, "per_reader": per_reader}


def analyze(
    df: pd.DataFrame, *, covariance: Covariance = "jackknife", threshold: float | None = None
) -> dict[str, Any]:
    """OR analysis of a ``reader,modality,case,truth,score`` table (see the module docstring).

    A reader named ``model`` is kept out of the OR analysis; its AUC is reported against the
    human readers' average under ``"model"``. With ``threshold``, sensitivity and specificity at
    ``score >= threshold`` are reported under ``"operating_point"``.
    """
    # Row numbers in error messages are 0-based positions, whatever index the caller's frame has.
    return _analyze(
        validate_frame(df.reset_index(drop=True), source="input"),
        covariance=covariance,
        threshold=threshold,
        source="input",
    )


def analyze_csv(
    path: str | Path, *, covariance: Covariance = "jackknife", threshold: float | None = None
) -> dict[str, Any]:
    """``analyze`` a reader-study CSV; errors name the file, line and column."""
    return _analyze(read_csv(path), covariance=covariance, threshold=threshold, source=str(path))


def _analyze(
    clean: pd.DataFrame, *, covariance: str, threshold: float | None, source: str
) -> dict[str, Any]:
    if covariance not in ("jackknife", "delong"):
        raise InputError(f"covariance must be 'jackknife' or 'delong', got {covariance!r}")
    humans = clean[clean["reader"] != MODEL_READER]
    if humans.empty:
        raise InputError(f"{source}: no human readers (only 'model'); an MRMC study needs >= 2")
    study = to_study(humans, source=source)
    t, r, n = len(study.modalities), len(study.readers), len(study.cases)
    if r < 2:
        raise InputError(
            f"{source}: only reader {study.readers[0]!r}; the OR analysis needs >= 2 readers "
            "(use bonebase.stats.roc.delong_test for one reader)"
        )
    model = model_scores(clean, cases=study.cases, source=source)

    flat = study.scores.reshape(t * r, n)
    if covariance == "jackknife":
        aucs, cov = jackknife_covariance(study.truth, flat)
    else:
        aucs, cov = delong_covariance(study.truth, flat)
    theta = aucs.reshape(t, r)
    comp = or_components(theta, cov)

    per_reader = {
        rdr: {mod: float(theta[i, j]) for i, mod in enumerate(study.modalities)}
        for j, rdr in enumerate(study.readers)
    }
    result: dict[str, Any] = {
        "modalities": study.modalities,
        "readers": study.readers,
        "n_cases": n,
        "n_diseased": int(study.truth.sum()),
        "auc": {mod: float(theta[i].mean()) for i, mod in enumerate(study.modalities)},
        "per_reader_auc": per_reader,
        **or_tests(theta, comp, study.modalities),
        "variance_components": comp,
        "covariance": covariance,
    }
    if model:
        model_auc, _ = delong_covariance(study.truth, np.vstack(list(model.values())))
        result["model"] = {
            "auc": {m: float(a) for m, a in zip(model, model_auc, strict=True)},
            "readers_auc": {m: result["auc"][m] for m in model},
            "difference": {
                m: float(a) - result["auc"][m] for m, a in zip(model, model_auc, strict=True)
            },
        }
        per_reader[MODEL_READER] = dict(result["model"]["auc"])
    if threshold is not None:
        result["operating_point"] = _operating_points(study, model, float(threshold))
    return result
