"""Chinese text in the images bonebase draws (#25): checked on the rendered pixels.

A font without a glyph draws a "missing glyph" box, the same box for every Han character it
lacks. So a label drawn with real glyphs differs from the same label with its characters
rotated ("骨肉瘤" and "肉瘤骨"), while boxes render both pixel for pixel the same; the control
renders the labels with matplotlib's own font alone and sees exactly that."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from bonebase import fonts

ROOT = Path(__file__).resolve().parents[2]
# osteosarcoma, chondrosarcoma, giant cell tumour of bone; two hospitals. Numbered, so that the
# charts keep their order when the Chinese characters are rotated.
DIAGNOSES = ("1 骨肉瘤", "2 软骨肉瘤", "3 骨巨细胞瘤")
SITES = ("A 广西医科大学", "B 北京积水潭医院")


def _rotated(label: str) -> str:
    """``label``'s Chinese characters rotated by one (the same boxes where glyphs are missing)."""
    key, text = label.split(" ")
    assert len(set(text)) == len(text) > 1
    return f"{key} {text[1:]}{text[0]}"


def _pngs(html: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("L"))
            for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def _mean_maps(names) -> dict:
    rng = np.random.default_rng(0)
    maps = {}
    for name in names:
        maps[name] = rng.random((32, 32))
        maps[f"image {name}"] = rng.random((32, 32))
        lesion = np.zeros((32, 32))
        lesion[10:20, 10:20] = 1
        maps[f"lesion {name}"] = lesion
    return maps


def _explanation_report(names) -> np.ndarray:
    """The report's average-map section with one panel per diagnosis, as drawn."""
    from bonebase.model.explain_report import explanation_html
    from bonebase.model.report import _png, _table

    html = explanation_html({"explanation": {}}, _mean_maps(names), _png, _table)
    (png,) = _pngs(html)
    return png


def _tsne_chart(classes, sites) -> np.ndarray:
    """The report's t-SNE chart, its legends naming diagnoses and hospitals."""
    from bonebase.model.report import _tsne

    rng = np.random.default_rng(1)
    rows = [{"x": rng.normal(), "y": rng.normal(), "label": c, "site": s}
            for c in classes for s in sites for _ in range(3)]
    (png,) = _pngs(_tsne(SimpleNamespace(tsne=pd.DataFrame(rows))))
    return png


@pytest.fixture(scope="module")
def cjk_font():
    font = fonts.find()
    assert font is not None, f"no CJK font: apt-get install {fonts.PACKAGE}"
    return font


@pytest.fixture
def latin_only():
    """matplotlib with its own sans-serif font alone, as on a machine without a CJK font."""
    from matplotlib import rcParams

    saved = list(rcParams["font.family"])
    rcParams["font.family"] = ["DejaVu Sans"]
    yield
    rcParams["font.family"] = saved


def test_the_cjk_font_is_found_through_fontconfig(cjk_font):
    assert cjk_font.family in fonts.FAMILIES
    assert fonts.has_cjk("骨肉瘤") and not fonts.has_cjk("osteosarcoma, distal femur")


def test_a_report_with_chinese_diagnosis_names_draws_their_glyphs(cjk_font):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing")  # boxes would warn
        chinese = _explanation_report(DIAGNOSES)
    rotated = _explanation_report([_rotated(d) for d in DIAGNOSES])
    assert chinese.shape == rotated.shape
    differ = chinese != rotated
    assert differ.mean() > 0.001, "the Chinese titles render like missing-glyph boxes"
    # Only the titles differ: the rows of pixels that differ are a few, above the panels' maps.
    assert differ.any(axis=1).sum() < chinese.shape[0] / 4


def test_a_chart_with_chinese_legends_draws_their_glyphs(cjk_font):
    chinese = _tsne_chart(DIAGNOSES, SITES)
    rotated = _tsne_chart([_rotated(d) for d in DIAGNOSES], [_rotated(s) for s in SITES])
    assert chinese.shape == rotated.shape and (chinese != rotated).mean() > 0.001


def test_the_control_without_the_cjk_font_draws_boxes(latin_only):
    """What the two tests above tell apart: drawn with a Latin font only (as the report would
    without fonts.use_in_matplotlib), the labels are boxes, the same whatever the characters."""
    import matplotlib.pyplot as plt

    def chart(labels) -> bytes:
        fig, ax = plt.subplots(figsize=(4, 2))
        for i, label in enumerate(labels):
            ax.scatter([i], [i], label=label)
        ax.set_title(labels[0])
        ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=60)
        plt.close(fig)
        return buf.getvalue()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chinese = chart([*DIAGNOSES, *SITES])
    rotated = chart([_rotated(label) for label in (*DIAGNOSES, *SITES)])
    assert chinese == rotated
    assert any("missing from font" in str(w.message) for w in caught)


def _drawn(text: str, font) -> np.ndarray:
    canvas = Image.new("L", (240, 40), 0)
    ImageDraw.Draw(canvas).text((4, 4), text, fill=255, font=font)
    return np.asarray(canvas)


def test_an_image_overlay_draws_chinese_with_the_cjk_font(cjk_font):
    font = fonts.pil_font(24, "骨肉瘤 distal femur")
    chinese, rotated = _drawn("1 骨肉瘤股远端", font), _drawn(_rotated("1 骨肉瘤股远端"), font)
    assert chinese.any() and not np.array_equal(chinese, rotated)
    # Each character its own glyph: the masks of distinct characters differ pairwise.
    masks = {c: bytes(font.getmask(c)) for c in "骨肉瘤股远端"}
    assert len(set(masks.values())) == len(masks)
    # The contrast: Pillow's own font has no Chinese, its characters all draw the same box.
    default = ImageFont.load_default(size=24)
    assert len({bytes(default.getmask(c)) for c in "骨肉瘤"}) == 1


def test_without_a_cjk_font_chinese_text_fails_clearly(tmp_path):
    """A real process without fontconfig's fc-list (no font to be found): a figure with Chinese
    labels stops with the package to install before it is drawn; one in English passes."""
    script = (
        "import matplotlib.pyplot as plt\n"
        "from bonebase import fonts\n"
        "from bonebase.errors import BonebaseError\n"
        "fig, ax = plt.subplots(); ax.set_title('bone'); fonts.check_figure(fig)\n"
        "fig, ax = plt.subplots(); ax.set_title('骨肉瘤')\n"
        "try:\n    fonts.check_figure(fig)\nexcept BonebaseError as e:\n    print('ERROR', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env={"PATH": str(tmp_path), "HOME": os.environ["HOME"],
                                         "MPLBACKEND": "Agg"}, timeout=120, check=True)
    assert "ERROR no font with Chinese glyphs is installed to draw '骨肉瘤'" in done.stdout
    assert f"apt-get install {fonts.PACKAGE}" in done.stdout
