"""Text burned into synthetic radiographs, as PACS exports and scanned films carry it.

A share of the radiographs (``generate(burned_in=...)``, none by default) gets the patient's
name, ID, birth and study dates and the hospital's name in the corners, in several fonts and
sizes, some in low contrast, some turned by 90° along an edge, in MONOCHROME1 images as well
(text is drawn to display white), plus harmless markers (the side letter and the view). The
truth, one line per drawn text with its box and whether it identifies, goes to
``<CODE>/burned_in.csv``, so that detection can be scored (benchmarks/burned_in.py).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

COLUMNS = ("file", "source", "identifying", "text", "x0", "y0", "x1", "y1", "rotated",
           "low_contrast")
_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)


@dataclass(frozen=True)
class BurnedText:
    """One text drawn on an image: which attribute's value (or "marker"), and where."""

    source: str
    identifying: bool
    text: str  # synthetic values only
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    rotated: bool
    low_contrast: bool


def _font(rng: np.random.Generator, size: int) -> ImageFont.ImageFont:
    files = [f for f in _FONT_FILES if Path(f).is_file()]
    pick = int(rng.integers(len(files) + 1))
    if pick < len(files):
        return ImageFont.truetype(files[pick], size)
    return ImageFont.load_default(size=size)  # Pillow's own font: there on every machine


def _dates(value: str) -> str:
    return f"{value[6:8]}.{value[4:6]}.{value[:4]}" if len(value) == 8 else value


def burn(ds: Dataset, *, side: str, view: str, rng: np.random.Generator) -> list[BurnedText]:
    """Draw identifying text and markers into ``ds``'s pixels (16-bit, one frame)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    maxv = (1 << int(ds.BitsStored)) - 1
    pixels = np.frombuffer(ds.PixelData, "<u2").reshape(rows, cols).astype(np.int64)
    white = 0 if ds.PhotometricInterpretation == "MONOCHROME1" else maxv
    values = [
        ("PatientName", str(ds.PatientName).split("=")[0].replace("^", " ").strip()),
        ("PatientID", str(ds.PatientID)),
        ("PatientBirthDate", "DOB " + _dates(str(ds.get("PatientBirthDate", "")))),
        ("StudyDate", _dates(str(ds.get("StudyDate", "")))),
        ("InstitutionName", str(ds.get("InstitutionName", ""))),
    ]
    values = [(k, v) for k, v in values if v.strip()]
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    drawn: list[BurnedText] = []
    occupied: list[tuple[int, int, int, int]] = []
    size = max(12, int(rows * rng.uniform(0.03, 0.045)))
    font = _font(rng, size)
    low = bool(rng.random() < 0.25)
    # Identifying lines stacked in two corners, the rest along the right edge turned by 90°.
    turn = bool(rng.random() < 0.3)
    first, second = rng.permutation(4)[:2]
    groups = [values[:2], values[2:4]]
    if turn:
        groups.append(values[4:])
    else:
        groups[1] = values[2:]
    for group, corner in zip(groups, [corners[first], corners[second], None], strict=False):
        rotated = corner is None
        lines = [v for _, v in group]
        if not lines:
            continue
        mask = Image.new("L", (cols, rows))
        canvas = Image.new("L", (cols * 2, size * 2 * len(lines) + 4))
        draw = ImageDraw.Draw(canvas)
        boxes = []
        for i, text in enumerate(lines):
            draw.text((2, 2 + i * int(size * 1.4)), text, fill=255, font=font)
            boxes.append(draw.textbbox((2, 2 + i * int(size * 1.4)), text, font=font))
        block = canvas.crop((0, 0, max(b[2] for b in boxes) + 2, max(b[3] for b in boxes) + 2))
        if rotated:
            block = block.rotate(90, expand=True)
        bw, bh = block.size
        if bw >= cols - 8 or bh >= rows * 0.55:
            continue  # too long for this small image: left out (and out of the truth)
        if rotated:
            x, y = cols - bw - 3, (rows - bh) // 2
        else:
            x = 4 if corner[0] == 0 else cols - bw - 4
            y = 4 if corner[1] == 0 else rows - bh - 4
        placed = (x - 6, y - 6, x + bw + 6, y + bh + 6)
        if any(placed[0] < o[2] and o[0] < placed[2] and placed[1] < o[3] and o[1] < placed[3]
               for o in occupied):
            continue  # would overlap text already drawn (a long line on a small image)
        occupied.append(placed)
        mask.paste(block, (x, y))
        on = np.asarray(mask) > 96
        if low:
            pixels[on] = np.clip(pixels[on] + (white - pixels[on]) * 0.35, 0, maxv).astype(np.int64)
        else:
            pixels[on] = white
        for (key, text), b in zip(group, boxes, strict=True):
            if rotated:  # turned by 90° counter-clockwise: x from y, y from the block's right
                box = (x + b[1], y + bw_rot(block, b), x + b[3], y + bw_rot(block, b) + b[2] - b[0])
            else:
                box = (x + b[0], y + b[1], x + b[2], y + b[3])
            drawn.append(BurnedText(key, True, text, box, rotated, low))
    # Markers: the side letter and the view, large, at the left edge's middle (clear of the
    # corners and of the turned text on the right edge).
    for text, frac in ((side, 0.36), (view, 0.6)):
        mfont = _font(rng, max(14, int(rows * 0.06)))
        mask = Image.new("L", (cols, rows))
        draw = ImageDraw.Draw(mask)
        pos = (int(cols * 0.04), int(rows * frac))
        box = draw.textbbox(pos, text, font=mfont)
        draw.text(pos, text, fill=255, font=mfont)
        pixels[np.asarray(mask) > 96] = white
        drawn.append(BurnedText("marker", False, text, box, False, False))
    ds.PixelData = pixels.astype("<u2").tobytes()
    return drawn


def bw_rot(block: Image.Image, b: tuple[int, int, int, int]) -> int:
    """The y offset of a line's box in a block turned by 90° counter-clockwise."""
    return block.size[1] - b[2]


def write_truth(path: Path, rows: list[tuple[str, BurnedText]]) -> None:
    """``<CODE>/burned_in.csv``: one line per drawn text."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for file, t in sorted(rows, key=lambda r: (r[0], r[1].box)):
            writer.writerow((file, t.source, int(t.identifying), t.text, *t.box, int(t.rotated),
                             int(t.low_contrast)))
