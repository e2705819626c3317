"""Charts as inline SVG, drawn on the server: no script, no CDN, readable without JavaScript."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

BAR_H, GAP, LABEL_W, BAR_W, VALUE_W = 18, 4, 210, 320, 60


def bar_chart(items: list[tuple[str, int]], *, title: str, top: int = 25,
              others: str = "%(n)d others") -> Markup:
    """Horizontal bars, largest first as given; beyond ``top`` items the rest are summed, under
    the label ``others`` (``%(n)d``: how many; the page's language)."""
    shown = list(items[:top])
    if len(items) > top:
        shown.append((others % {"n": len(items) - top}, sum(n for _, n in items[top:])))
    peak = max((n for _, n in shown), default=0) or 1
    height = len(shown) * (BAR_H + GAP) + 28
    width = LABEL_W + BAR_W + VALUE_W
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">',
             f'<text x="0" y="14" class="chart-title">{escape(title)}</text>']
    for i, (label, n) in enumerate(shown):
        y = 24 + i * (BAR_H + GAP)
        w = max(1, round(BAR_W * n / peak))
        parts.append(
            f'<g><title>{escape(str(label))}: {n}</title>'
            f'<text x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(str(label))}</text>'
            f'<rect x="{LABEL_W}" y="{y}" width="{w}" height="{BAR_H}" class="bar"/>'
            f'<text x="{LABEL_W + w + 4}" y="{y + 13}">{n}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(items: list[tuple[str, int]], *, title: str) -> Markup:
    """Vertical bars in the given order (age decades)."""
    col, height, base = 44, 180, 150
    peak = max((n for _, n in items), default=0) or 1
    width = max(col * len(items), 200)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{height + 10}" viewBox="0 0 {width} {height + 10}">',
             f'<text x="0" y="14" class="chart-title">{escape(title)}</text>']
    for i, (label, n) in enumerate(items):
        h = max(1, round((base - 30) * n / peak))
        x = i * col + 4
        parts.append(
            f'<g><title>{escape(label)}: {n}</title>'
            f'<rect x="{x}" y="{base - h}" width="{col - 8}" height="{h}" class="bar"/>'
            f'<text x="{x + (col - 8) / 2}" y="{base - h - 3}" text-anchor="middle">{n}</text>'
            f'<text x="{x + (col - 8) / 2}" y="{base + 14}" text-anchor="middle">{escape(label)}'
            "</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
