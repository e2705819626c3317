"""The HTML report of one drift check: self-contained (inline CSS and SVG, no script, no CDN),
readable offline in a hospital network."""

from __future__ import annotations

from html import escape

from bonebase.monitor.charts import paired_histogram
from bonebase.monitor.drift import histogram

_CSS = ("body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;"
        "text-align:left}.drift{color:#b00;font-weight:600}.charts{display:flex;flex-wrap:wrap;"
        "gap:12px}.alert{background:#fee;border:1px solid #c00;padding:8px}")


def _fmt(v, spec=".3f") -> str:
    return "–" if v is None else format(v, spec)


def drift_html(*, site: str, model_id: int, result: dict, reference: list[dict],
               current: list[dict], reasons: list[str]) -> str:
    """The report: verdict, a row per feature (test, p-value, shift, drift), histograms of the
    numeric features (reference = the model's training data, current = the site's new images)."""
    rows = []
    for f in result["features"]:
        cls = ' class="drift"' if f["drifted"] else ""
        rows.append(f"<tr{cls}><td>{escape(f['group'])}</td><td>{escape(f['feature'])}</td>"
                    f"<td>{escape(f['test'])}</td><td>{f['n_reference']}</td>"
                    f"<td>{f['n_current']}</td><td>{_fmt(f['statistic'])}</td>"
                    f"<td>{_fmt(f['p_value'], '.2g')}</td><td>{_fmt(f['shift'])}</td>"
                    f"<td>{'yes' if f['drifted'] else 'no'}</td></tr>")
    charts = []
    for f in result["features"]:
        if f["kind"] == "numeric":
            hist = histogram(reference, current, f["feature"])
            if hist:
                charts.append(paired_histogram(hist, title=f"{f['group']}: {f['feature']}",
                                               labels=("training data", site)))
    share = result["share"]
    verdict = (f'<p class="alert">Alert: {escape("; ".join(reasons))}</p>' if reasons else
               f"<p>No alert: {len(result['drifted'])} of {result['tested']} features drift.</p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Drift of {escape(site)}"
            f" for model {model_id}</title><style>{_CSS}</style></head><body>"
            f"<h1>Input drift of {escape(site)} against model {model_id}'s training data</h1>"
            f"<p>{result['n_current']} new radiographs of {escape(site)} against "
            f"{result['n_reference']} of the training data; a feature drifts when p &lt; "
            f"{result['alpha']} (Kolmogorov–Smirnov for numbers, chi-square for categories); "
            f"drift share {_fmt(share, '.2f')}.</p>{verdict}"
            "<table><tr><th>group</th><th>feature</th><th>test</th><th>n training</th>"
            "<th>n site</th><th>statistic</th><th>p</th><th>shift</th><th>drift</th></tr>"
            f"{''.join(rows)}</table><h2>Distributions</h2><div class='charts'>"
            f"{''.join(charts)}</div></body></html>")


__all__ = ["drift_html"]
