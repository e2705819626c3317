"""Server-drawn SVG charts of the watch (no script, no CDN): a value over time with its CI band
per site, and a reference-vs-current histogram. Used by the drift report and the web page."""

from __future__ import annotations

from html import escape

# Colour-blind-safe palette (Okabe–Ito); sites take colours in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
W, H, LEFT, TOP, BOTTOM = 560, 220, 44, 24, 30


def _y(v: float, lo: float, hi: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / ((hi - lo) or 1))


def band_chart(series: dict[str, list[tuple[str, float | None, float | None, float | None]]],
               *, title: str, lo: float = 0.0, hi: float = 1.0,
               floor: float | None = None) -> str:
    """Lines per site over the sorted union of their x labels (months), each point with its
    CI as a shaded band; ``floor`` draws a dashed threshold line."""
    xs = sorted({x for pts in series.values() for x, *_ in pts})
    step = (W - LEFT - 16) / max(len(xs) - 1, 1)
    xpos = {x: LEFT + (i * step if len(xs) > 1 else (W - LEFT) / 2) for i, x in enumerate(xs)}
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{W}" '
           f'height="{H}" viewBox="0 0 {W} {H}">',
           f'<text x="0" y="14" class="chart-title">{escape(title)}</text>']
    for t in (lo, (lo + hi) / 2, hi):
        y = _y(t, lo, hi)
        out.append(f'<line x1="{LEFT}" x2="{W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{t:.2f}</text>')
    if floor is not None:
        y = _y(floor, lo, hi)
        out.append(f'<line x1="{LEFT}" x2="{W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c00" '
                   f'stroke-dasharray="4 3"><title>threshold {floor}</title></line>')
    for x in xs:
        out.append(f'<text x="{xpos[x]:.1f}" y="{H - 10}" text-anchor="middle">{escape(x)}</text>')
    for k, (site, pts) in enumerate(sorted(series.items())):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(x, v, a, b) for x, v, a, b in sorted(pts) if v is not None]
        if not pts:
            continue
        band = [(xpos[x], _y(b if b is not None else v, lo, hi)) for x, v, a, b in pts]
        band += [(xpos[x], _y(a if a is not None else v, lo, hi)) for x, v, a, b in reversed(pts)]
        if len(pts) == 1:  # a single month: a vertical CI bar instead of a band
            (x0, y0), (_, y1) = band[0], band[1]
            out.append(f'<rect x="{x0 - 5:.1f}" y="{y0:.1f}" width="10" height="{y1 - y0:.1f}" '
                       f'fill="{colour}" opacity="0.2"/>')
        else:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in band)
            out.append(f'<polygon points="{path}" fill="{colour}" opacity="0.2"/>')
        line = " ".join(f"{xpos[x]:.1f},{_y(v, lo, hi):.1f}" for x, v, _, _ in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, v, a, b in pts:
            ci = f" (95% CI {a:.2f}–{b:.2f})" if a is not None and b is not None else ""
            out.append(f'<circle cx="{xpos[x]:.1f}" cy="{_y(v, lo, hi):.1f}" r="3.5" '
                       f'fill="{colour}"><title>{escape(site)} {escape(x)}: {v:.3f}{ci}'
                       f'</title></circle>')
        out.append(f'<text x="{W - 70}" y="{TOP + 14 * k}" fill="{colour}">{escape(site)}</text>')
    out.append("</svg>")
    return "".join(out)


def paired_histogram(hist: dict, *, title: str, labels: tuple[str, str] = ("reference",
                                                                          "current")) -> str:
    """Two distributions over the same bins (``bonebase.monitor.drift.histogram``)."""
    w, h, base = 300, 140, 110
    n = len(hist["reference"])
    col = (w - 10) / max(n, 1)
    peak = max(max(hist["reference"]), max(hist["current"]), 1e-9)
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{w}" '
           f'height="{h}" viewBox="0 0 {w} {h}">',
           f'<text x="0" y="12" class="chart-title">{escape(title)}</text>']
    for i in range(n):
        for j, (key, colour) in enumerate((("reference", "#999"), ("current", PALETTE[0]))):
            v = hist[key][i]
            bh = (base - 20) * v / peak
            out.append(f'<rect x="{5 + i * col + j * col / 2:.1f}" y="{base - bh:.1f}" '
                       f'width="{col / 2 - 1:.1f}" height="{bh:.1f}" fill="{colour}">'
                       f'<title>{labels[j]} {hist["edges"][i]:.3g}–{hist["edges"][i + 1]:.3g}: '
                       f'{v:.0%}</title></rect>')
    out.append(f'<text x="5" y="{base + 14}">{hist["edges"][0]:.3g}</text>'
               f'<text x="{w - 5}" y="{base + 14}" text-anchor="end">{hist["edges"][-1]:.3g}</text>'
               f'<text x="5" y="{h - 2}" fill="#777">grey: {labels[0]}</text>'
               f'<text x="{w - 5}" y="{h - 2}" text-anchor="end" fill="{PALETTE[0]}">'
               f'blue: {labels[1]}</text></svg>')
    return "".join(out)


__all__ = ["band_chart", "paired_histogram"]
