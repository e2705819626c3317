"""Evaluation statistics as reported in radiology AI papers.

- ``roc``: AUC, DeLong CI and paired test, stratified bootstrap CI, PR AUC, operating points.
- ``calibration``: reliability curve, ECE, Brier score, temperature scaling.
- ``mrmc``: Obuchowski-Rockette reader-study analysis (RRRC, FRRC, RRFC), validated against
  the published Van Dyke et al. (1993) results of MRMCaov and RJafroc.
"""

from bonebase.stats.calibration import (
    ReliabilityCurve,
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)
from bonebase.stats.mrmc import analyze, analyze_csv, format_report
from bonebase.stats.roc import (
    AucCI,
    Comparison,
    auc,
    bootstrap_auc_ci,
    confusion_metrics,
    delong_ci,
    delong_covariance,
    delong_test,
    pr_auc,
    threshold_at_sensitivity,
    youden_threshold,
)

__all__ = [
    "AucCI",
    "Comparison",
    "ReliabilityCurve",
    "analyze",
    "analyze_csv",
    "apply_temperature",
    "auc",
    "bootstrap_auc_ci",
    "brier_score",
    "confusion_metrics",
    "delong_ci",
    "delong_covariance",
    "delong_test",
    "expected_calibration_error",
    "fit_temperature",
    "format_report",
    "pr_auc",
    "reliability_curve",
    "threshold_at_sensitivity",
    "youden_threshold",
]
