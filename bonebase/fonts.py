"""A font for Chinese text in the images bonebase draws itself (#25): report charts
(matplotlib) and image overlays (Pillow).

Diagnosis names, sites and labels reach charts in Chinese; a font without CJK glyphs draws
them as empty boxes ("tofu"). bonebase uses the Noto Sans CJK font that Debian's
``fonts-noto-cjk`` package installs (other distributions and macOS ship the same family under
the same name), found through fontconfig; matplotlib keeps its own font (DejaVu Sans) for Latin
text and falls back to the CJK font glyph by glyph. When no such font is installed, drawing
Chinese text fails with a message that names the package to install, never with boxes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

from bonebase.errors import ConfigError

#: Families that cover Simplified Chinese, best first (Noto's Simplified Chinese face first: the
#: same code points are drawn in each region's own glyph forms).
FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans CJK JP", "WenQuanYi Micro Hei",
            "WenQuanYi Zen Hei")
PACKAGE = "fonts-noto-cjk"
#: Han ideographs, CJK punctuation and full-width forms: the text that needs the font.
_CJK = re.compile(r"[\u2e80-\u2fff\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                  r"\uff00-\uffef]")


class MissingFontError(ConfigError):
    """No installed font has Chinese glyphs."""


@dataclass(frozen=True)
class CJKFont:
    path: str
    index: int  # the face in a font collection (.ttc)
    family: str


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds characters that need a CJK font."""
    return bool(_CJK.search(text or ""))


@cache
def find() -> CJKFont | None:
    """The best installed CJK font (fontconfig's list of fonts covering zh-cn), or None."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        out = subprocess.run([fc_list, ":lang=zh-cn", "file", "index", "family"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):  # a hung or broken fontconfig: no CJK font
        return None
    faces: dict[str, CJKFont] = {}
    for line in out.splitlines():
        # "/usr/share/fonts/.../NotoSansCJK-Regular.ttc: Noto Sans CJK SC,Noto Sans CJK SC
        # Regular:index=2" (bold and other styles are listed too: regular files first below)
        m = re.match(r"(?P<path>[^:]+): (?P<families>[^:]*):index=(?P<index>\d+)", line)
        if not m:
            continue
        for family in m["families"].split(","):
            font = CJKFont(m["path"], int(m["index"]), family.strip())
            known = faces.get(font.family)
            if known is None or ("Regular" in font.path and "Regular" not in known.path):
                faces[font.family] = font
    for family in FAMILIES:
        if family in faces:
            return faces[family]
    return None


def require(text: str | None = None) -> CJKFont | None:
    """The CJK font; raises MissingFontError when none is installed and ``text`` (if given)
    needs one. Returns None when ``text`` needs no CJK font and none is installed."""
    font = find()
    if font is None and (text is None or has_cjk(text)):
        shown = f" to draw {text[:40]!r}" if text else ""
        raise MissingFontError(
            f"no font with Chinese glyphs is installed{shown}: install Debian's {PACKAGE} "
            f"(apt-get install {PACKAGE}) or another font of the families "
            f"{', '.join(FAMILIES)}, then run again")
    return font


def use_in_matplotlib() -> CJKFont | None:
    """Let matplotlib draw CJK text: the installed CJK font is registered and appended to the
    font families, as the fallback for the glyphs of the first (matplotlib's own sans-serif
    font, which keeps drawing Latin text). Safe to call again; does nothing (returns None) when
    no CJK font is installed."""
    from matplotlib import rcParams

    font = find()
    if font is None:
        return None
    _register(font.path)
    # A generic family ("sans-serif") names one font; fallback needs the CJK family listed too.
    families = [f for f in rcParams["font.family"] if f != font.family]
    rcParams["font.family"] = [*families, font.family]
    return font


@cache
def _register(path: str) -> None:
    """Add a font file to matplotlib's list (its cache may predate the font's installation)."""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(path)


def check_figure(fig) -> None:
    """Raise MissingFontError before a figure with Chinese text is drawn without a CJK font."""
    from matplotlib.text import Text

    for artist in fig.findobj(Text):
        if has_cjk(artist.get_text()):
            require(artist.get_text())
            use_in_matplotlib()
            return


def pil_font(size: int, text: str | None = None):
    """A Pillow font of ``size`` pixels that draws Chinese (the CJK font; its Latin glyphs are
    drawn too). Without a CJK font: Pillow's own font when ``text`` is given and needs none,
    else MissingFontError (no ``text``: the caller may draw anything)."""
    from PIL import ImageFont

    font = require(text)
    if font is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(font.path, size, index=font.index)
