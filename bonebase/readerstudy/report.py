"""Text tables of a study's results (``bonebase reader-study results``)."""

from __future__ import annotations

from typing import Any

from bonebase.stats.mrmc_report import format_report


def _f(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def format_results(out: dict[str, Any]) -> str:
    s = out["study"]
    lines = [f"reader study {s['name']}: {s['task']}, dataset v{s['dataset_version']} "
             f"{s['split']}, model {s['model_id']}; {out['n_cases']} cases "
             f"({out['n_positive']} positive); threshold {out['threshold']:.1f} of 100", "",
             f"{'reader':<16}{'arm':<9}{'answered':>10}{'AUC':>8}{'sens':>8}{'spec':>8}"
             f"{'median s':>10}"]
    for r in out["per_reader"]:
        lines.append(f"{r['reader']:<16}{r['arm']:<9}{r['answered']:>6}/{r['of']:<3}"
                     f"{_f(r.get('auc')):>8}{_f(r.get('sensitivity')):>8}"
                     f"{_f(r.get('specificity')):>8}{_f(r.get('median_seconds'), '.1f'):>10}")
    m = out["model"]
    lines.append(f"{'model':<16}{'-':<9}{'':>10}{_f(m['auc']):>8}{_f(m['sensitivity']):>8}"
                 f"{_f(m['specificity']):>8}")
    if out["excluded_readers"]:
        lines += ["", "not analysed (did not answer every case in both arms): "
                  + ", ".join(out["excluded_readers"])]
    lines.append("")
    if out["analysis"] is not None:
        lines.append(format_report(out["analysis"]))
    else:
        lines.append(f"no OR analysis: {out['analysis_missing']}")
    return "\n".join(lines)


__all__ = ["format_results"]
