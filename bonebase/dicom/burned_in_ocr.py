"""Tesseract, read in-process: one engine per thread, made once and reused.

``tesserocr`` (MIT; its wheels carry Tesseract 5 itself) calls Tesseract's API in this process;
the English data comes from the Debian package ``tesseract-ocr-eng`` (nothing is downloaded).
Without ``tesserocr`` the ``tesseract`` program is run through ``pytesseract``, the same reading
at about 0.2-0.5 s more a call (a process started each time).

:func:`read_rects` reads every rectangle of an image in one call: the rectangles, cleaned
(:func:`burned_in_image.text_contrast`), stacked into one sheet with white gaps, each in the
direction its shape says (a line wider than high upright, a column turned; a squarish block both
ways, since text written along an edge may touch it).
"""

from __future__ import annotations

import os
import threading
from functools import cache
from pathlib import Path

import numpy as np

from bonebase.dicom.burned_in_image import Page, text_contrast

MIN_CONFIDENCE = 45  # Tesseract's word confidence (0-100) below which a word is noise
SURE = 80  # mean confidence of a line from which unrecognised text counts as text at all
FAINT = "\x00"  # marks a line read with less confidence (see SURE) until it is judged
TURN = 1.5  # a rectangle this many times higher than wide is read turned only (and v.v.)
GAP = 24  # white pixels between the rectangles of a sheet
_CONFIG = "--psm 11 -c tessedit_do_invert=0"  # sparse text; the sheet is dark on white
_TESSDATA = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
             "/usr/share/tessdata", "/usr/local/share/tessdata")
_local = threading.local()


@cache
def _tessdata() -> str | None:
    """The folder holding eng.traineddata: TESSDATA_PREFIX, else Debian's."""
    for folder in (os.environ.get("TESSDATA_PREFIX"), *_TESSDATA):
        if folder and (Path(folder) / "eng.traineddata").is_file():
            return folder
    return None


def _engine():
    """This thread's tesserocr engine, or None (no tesserocr, or no English data)."""
    api = getattr(_local, "api", False)
    if api is False:
        api = None
        try:
            import tesserocr
        except ImportError:
            tesserocr = None
        if tesserocr is not None and _tessdata():
            api = tesserocr.PyTessBaseAPI(path=_tessdata(), lang="eng",
                                          psm=tesserocr.PSM.SPARSE_TEXT)
            api.SetVariable("tessedit_do_invert", "0")
        _local.api = api
    return api


def engine_name() -> str:
    return "tesserocr" if _engine() is not None else "pytesseract"


def available() -> bool:
    """Whether Tesseract can read: in-process, else the program (Debian tesseract-ocr)."""
    if _engine() is not None:
        return True
    import pytesseract

    try:
        pytesseract.get_tesseract_version()
    except Exception:  # noqa: BLE001 - not installed, not runnable
        return False
    return True


def _words(img: np.ndarray) -> list[list[str]]:
    """Tesseract's words on ``img`` as rows of its TSV (level 5 only)."""
    api = _engine()
    if api is not None:
        img = np.ascontiguousarray(img, dtype=np.uint8)
        api.SetImageBytes(img.tobytes(), img.shape[1], img.shape[0], 1, img.shape[1])
        api.Recognize()
        tsv = api.GetTSVText(0)
    else:
        import pytesseract

        os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # small images: threads cost more
        tsv = pytesseract.image_to_data(img, config=_CONFIG)
    rows = [line.split("\t") for line in tsv.splitlines()]
    return [r for r in rows if len(r) >= 12 and r[0] == "5"]


def ocr_lines(img: np.ndarray) -> list[tuple[tuple[int, int, int, int], str]]:
    """Tesseract's lines of words on ``img``: ((x, y, w, h), text), the text prefixed with
    FAINT when the line's mean confidence is below SURE."""
    lines: dict[tuple[str, str, str], list[list[str]]] = {}
    for row in _words(img):
        word, conf = row[11], float(row[10])
        digits = sum(ch.isdigit() for ch in word)
        # A number read poorly still counts (a date or an ID is judged by its pattern).
        if not word.strip() or conf < (0 if digits >= 3 else MIN_CONFIDENCE):
            continue
        if not any(ch.isalnum() for ch in word):
            continue
        lines.setdefault((row[2], row[3], row[4]), []).append(row)
    out = []
    for rows in lines.values():
        x0 = min(int(r[6]) for r in rows)
        y0 = min(int(r[7]) for r in rows)
        x1 = max(int(r[6]) + int(r[8]) for r in rows)
        y1 = max(int(r[7]) + int(r[9]) for r in rows)
        text = " ".join(r[11] for r in rows)
        confidence = sum(float(r[10]) for r in rows) / len(rows)
        out.append(((x0, y0, x1 - x0, y1 - y0), text if confidence >= SURE else FAINT + text))
    return out


def read_rects(page: Page, rects: list[tuple]) -> list[tuple[tuple, str]]:
    """OCR of every rectangle (y0, y1, x0, x1 in OCR's copy) in one Tesseract call; boxes come
    back in the pixels of OCR's copy."""
    crops = []
    for y0, y1, x0, x1 in rects:
        crop = text_contrast(page.crop(y0, y1, x0, x1))
        if (crop < 128).mean() < 0.002:
            continue  # no stroke left once the background is gone
        h, w = crop.shape
        if h < TURN * w:
            crops.append((crop, False, y0, x0, h))
        if w < TURN * h:  # text written along an edge, read turned clockwise
            crops.append((np.rot90(crop, -1), True, y0, x0, h))
    if not crops:
        return []
    width = max(c[0].shape[1] for c in crops) + 2 * GAP
    height = sum(c[0].shape[0] + GAP for c in crops) + GAP
    sheet = np.full((height, width), 255, np.uint8)
    places, top = [], GAP
    for crop, *rest in crops:
        sheet[top:top + crop.shape[0], GAP:GAP + crop.shape[1]] = crop
        places.append((top, crop.shape[0], *rest))
        top += crop.shape[0] + GAP
    found = []
    for (x, y, bw, bh), text in ocr_lines(sheet):
        cy = y + bh / 2
        for top, ch, turned, y0, x0, orig_h in places:
            if top - GAP / 2 <= cy < top + ch + GAP / 2:
                x, y = x - GAP, y - top
                if turned:  # back from the crop turned clockwise
                    found.append(((x0 + y, y0 + orig_h - x - bw, bh, bw), text))
                else:
                    found.append(((x0 + x, y0 + y, bw, bh), text))
                break
    return found
