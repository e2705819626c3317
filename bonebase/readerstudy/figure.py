"""The paper's figure as inline SVG: each reader's operating point (1 - specificity,
sensitivity) at the study's threshold, unaided → aided, over the model's ROC curve."""

from __future__ import annotations

from html import escape
from typing import Any

SIZE, PAD = 360, 44


def _xy(fpr: float, tpr: float) -> tuple[float, float]:
    return PAD + fpr * (SIZE - 2 * PAD), SIZE - PAD - tpr * (SIZE - 2 * PAD)


def operating_points_svg(out: dict[str, Any]) -> str:
    """SVG text (names escaped) for a ``readerstudy.results.results`` dict."""
    roc = " ".join("{:.1f},{:.1f}".format(*_xy(f, t))
                   for f, t in [(0.0, 0.0), *out["model"]["roc"]])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="reader-figure" viewBox="0 0 {SIZE} {SIZE}"'
        f' width="{SIZE}" height="{SIZE}" role="img" aria-label="Readers\' operating points'
        ' unaided to aided over the model ROC curve">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6"'
        ' markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#b03a2e"/>'
        '</marker></defs>',
        f'<rect x="{PAD}" y="{PAD}" width="{SIZE - 2 * PAD}" height="{SIZE - 2 * PAD}"'
        ' fill="none" stroke="#888"/>',
        '<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#ccc"'
        ' stroke-dasharray="4 3"/>'.format(*_xy(0, 0), *_xy(1, 1)),
        f'<polyline class="model-roc" points="{roc}" fill="none" stroke="#3f7cac"'
        ' stroke-width="2"/>',
        f'<text x="{SIZE / 2}" y="{SIZE - 10}" text-anchor="middle" font-size="12">'
        '1 − specificity</text>',
        f'<text x="14" y="{SIZE / 2}" text-anchor="middle" font-size="12"'
        f' transform="rotate(-90 14 {SIZE / 2})">sensitivity</text>',
    ]
    points: dict[str, dict[str, tuple[float, float]]] = {}
    for r in out["per_reader"]:
        if r.get("sensitivity") is not None and r.get("specificity") is not None:
            points.setdefault(r["reader"], {})[r["arm"]] = _xy(1 - r["specificity"],
                                                               r["sensitivity"])
    for reader, arms in points.items():
        name = escape(reader)
        if "unaided" in arms and "aided" in arms:
            (x1, y1), (x2, y2) = arms["unaided"], arms["aided"]
            parts.append(f'<line class="shift" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}"'
                         f' y2="{y2:.1f}" stroke="#b03a2e" marker-end="url(#arrow)"/>')
        for arm, (x, y) in arms.items():
            fill = "#b03a2e" if arm == "aided" else "white"
            parts.append(f'<circle class="point {arm}" cx="{x:.1f}" cy="{y:.1f}" r="4"'
                         f' fill="{fill}" stroke="#b03a2e"><title>{name} {arm}</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts)


__all__ = ["operating_points_svg"]
