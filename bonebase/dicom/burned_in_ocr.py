"""Tesseract, read in-process: one engine per thread, made once and reused.

``tesserocr`` (MIT; its wheels carry Tesseract 5 itself) calls Tesseract's API in this process;
the English data comes from the Debian package ``tesseract-ocr-eng`` (nothing is downloaded).
Without ``tesserocr`` the ``tesseract`` program is run through ``pytesseract``, the same reading
at about 0.2-0.5 s more a call (a process started each time).

:func:`read_rects` reads every rectangle of an image in one call: the rectangles, cleaned
(:func:`burned_in_image.text_contrast`), stacked into one sheet with white gaps, each in the
direction its shape says (a line wider than high upright, a column turned; a squarish block
upright, then turned in a second call if the upright reading left strokes of it unread, since
text written along an edge may touch it). The sheet goes to Tesseract as 1 bit a pixel.

What costs, measured on the synthetic consortium (Tesseract 5.5, English "fast" data, 26 sheets):
a call is about 20 ms of CPU, a third of it layout; 1-bit input saves its thresholding (-10%);
turning squarish blocks only when needed -4%; the dictionaries off (``load_system_dawg``,
``load_freq_dawg``), page segmentation as one block (``--psm 6``) and cutting each rectangle to
its strokes saved 2-3% (within the noise) and changed the regions; a character whitelist changed
the words read. Reading the rectangles at 3/4 of OCR's copy saved 13% of an image with text and
kept recall at 1.000 on six seeds, but a name at the very edge of an image went unread (blacked
out as unsure text instead of matched to PatientName); at 0.6 recall fell to 0.988 and markers
redacted rose to 4.5%: the text is already near Tesseract's best size, so neither is taken.
Most of a call is the LSTM reading the text itself, whose cost goes with the characters read,
not the pixels: the 44 sheets of seed 19 read at half their size cost 28% less (three quarters:
13% less). Set on those sheets, ``textord_tabfind_find_tables=0``,
``textord_tabfind_vertical_text=0``, ``textord_heavy_nr=0``, the dictionaries off and any
``dotproduct`` (avx2, fma, sse, generic) read the same words within 3% of the time; OpenMP is
not in tesserocr's Tesseract (``OMP_THREAD_LIMIT=1`` changes nothing). Again on the 180 sheets
of 3 sites x 60 cases (seed 19): the 96 first sheets cost 33 ms each, the 84 second (turned
squarish) ones 4 ms, the 48 in which Tesseract finds no word 0.6 ms; ``perf`` puts most of a
call in the LSTM's forward pass (LSTM::Forward, matrixDotVector, NetworkIO), layout ~4 ms; and
``tessedit_fix_fuzzy_spaces``, ``tessedit_fix_hyphens``, ``lstm_use_matrix``,
``pageseg_apply_music_mask``, ``classify_enable_learning``, ``tessedit_zero_rejection`` off
give the same TSV in the same time. What Tesseract costs goes with what it is given to read.
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
ALL_READ = 0.95  # share of a squarish rectangle's strokes inside lines read upright: not turned
READ_MARGIN = 3  # pixels around a line read that count as read (its letters' antialiased edge)
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
        # The sheet is black on white already: handed over as 1 bit a pixel (a set bit white),
        # Tesseract skips its own thresholding (a sixth of a call; the words read are the same).
        bits = np.packbits(np.asarray(img) >= 128, axis=1)
        api.SetImageBytes(bits.tobytes(), img.shape[1], img.shape[0], 0, bits.shape[1])
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
    """OCR of every rectangle (y0, y1, x0, x1 in OCR's copy); boxes come back in the pixels
    of OCR's copy. One Tesseract call reads every rectangle in the direction its shape says;
    a squarish one is read upright in it, and turned in a second call only when the upright
    reading left strokes of it unread (text written along an edge: the turned reading doubled
    the text Tesseract recognised, for squarish blocks that were nearly all upright)."""
    first, squarish = [], []
    for y0, y1, x0, x1 in rects:
        crop = text_contrast(page.crop(y0, y1, x0, x1))
        if (crop < 128).mean() < 0.002:
            continue  # no stroke left once the background is gone
        h, w = crop.shape
        if h < TURN * w:
            first.append((crop, False, y0, x0, h))
        if w < TURN * h:  # text written along an edge, read turned clockwise
            if h < TURN * w:
                squarish.append((crop, y0, x0))
            else:
                first.append((np.rot90(crop, -1), True, y0, x0, h))
    found = _read_sheet(first)
    found += _read_sheet([(np.rot90(crop, -1), True, y0, x0, crop.shape[0])
                          for crop, y0, x0 in squarish if not _all_read(crop, y0, x0, found)])
    return found


def _all_read(crop: np.ndarray, y0: int, x0: int, found: list[tuple[tuple, str]]) -> bool:
    """Whether lines read with confidence cover (nearly) every stroke of ``crop``, whose
    top-left corner is (x0, y0) in OCR's copy."""
    ink = crop < 128
    read = np.zeros_like(ink)
    for (x, y, bw, bh), text in found:
        if not text.startswith(FAINT):
            m = READ_MARGIN
            read[max(0, y - y0 - m):max(0, y - y0 + bh + m),
                 max(0, x - x0 - m):max(0, x - x0 + bw + m)] = True
    return int((ink & ~read).sum()) <= (1 - ALL_READ) * int(ink.sum())


def _read_sheet(crops: list[tuple]) -> list[tuple[tuple, str]]:
    """One Tesseract call over ``crops`` (crop, turned, y0, x0, height before turning) stacked
    into one sheet with white gaps; the lines back in OCR's copy's pixels."""
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
