"""Text report of an MRMC ``analyze`` result (per-reader AUC table and the three OR tests)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None or not np.isfinite(x) else format(x, spec)


def format_report(result: dict[str, Any]) -> str:
    """Readable text tables of an ``analyze`` result: AUCs per reader and the three OR tests."""
    mods = result["modalities"]
    width = max(8, *(len(m) for m in mods))
    rdr_w = max(len("readers' mean") + 1, *(len(r) + 1 for r in result["per_reader_auc"]))
    lines = [
        f"MRMC analysis: {len(result['readers'])} readers, {len(mods)} modalities, "
        f"{result['n_cases']} cases ({result['n_diseased']} diseased); empirical AUC, "
        f"{result['covariance']} covariance",
        "",
        "AUC".ljust(rdr_w) + "".join(m.rjust(width + 2) for m in mods),
    ]
    for rdr, row in result["per_reader_auc"].items():
        lines.append(rdr.ljust(rdr_w) + "".join(_fmt(row.get(m)).rjust(width + 2) for m in mods))
    lines.append(
        "readers' mean".ljust(rdr_w)
        + "".join(_fmt(result["auc"][m]).rjust(width + 2) for m in mods)
    )
    if "model" in result:
        lines.append("")
        for m, d in result["model"]["difference"].items():
            lines.append(
                f"model vs readers' mean, {m}: {_fmt(result['model']['auc'][m])} vs "
                f"{_fmt(result['auc'][m])} (difference {_fmt(d, '+.4f')})"
            )
    rows = [("Analysis", "Comparison", "Difference", "95% CI", "Statistic", "df", "p")]
    for key, label, stat in (
        ("rrrc", "random readers, random cases", "f"),
        ("frrc", "fixed readers, random cases", "chi2"),
        ("rrfc", "random readers, fixed cases", "f"),
    ):
        res = result[key]
        if key == "frrc":
            df = str(res["df"])
        else:
            ddf = res["df_denominator"]
            ddf_s = str(ddf) if isinstance(ddf, int) else _fmt(ddf, ".2f")
            df = f"{res['df_numerator']}, {ddf_s}"
        name = "F" if stat == "f" else "chi2"
        rows.append(
            (label, "global", "", "", f"{name}={_fmt(res[stat], '.3f')}", df, _fmt(res["p"], ".4g"))
        )
        for pair in res["pairwise"]:
            lo, hi = pair["ci"]
            rows.append(
                (
                    "",
                    pair["comparison"],
                    _fmt(pair["difference"], "+.4f"),
                    f"[{_fmt(lo, '+.4f')}, {_fmt(hi, '+.4f')}]",
                    "",
                    "",
                    _fmt(pair["p"], ".4g"),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += [
        "",
        *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows),
    ]
    if "operating_point" in result:
        op = result["operating_point"]
        lines += ["", f"At score >= {op['threshold']:g} (readers' mean):"]
        for m in mods:
            lines.append(
                f"  {m}: sensitivity {_fmt(op['sensitivity'][m], '.3f')}, "
                f"specificity {_fmt(op['specificity'][m], '.3f')}"
            )
    return "\n".join(lines) + "\n"
