"""Which text on an image identifies: matched against the file's own identifying values
(tolerant of OCR errors), date and record-number patterns, known harmless markers.

A line is identifying when one of its words matches a value of the file's own identifying
attributes (names, IDs, dates, institution, accession) tolerant of OCR errors (case, ``^`` and
punctuation, O/0 and I/1, one wrong letter in five, dates written DD.MM.YYYY, MM/DD/YYYY,
YYYY-MM-DD...), or looks like a date or a record number; it is harmless when all its words are
known markers (L, R, AP, PA, LAT, STANDING, ...). Any other text is "unsure".
"""

from __future__ import annotations

import difflib
import re

from bonebase.dicom import free_text
from bonebase.dicom.burned_in_image import UNREAD

MARKERS = frozenset("""
    l r ap pa lat lateral latero left right rt lt li re sin dex d g standing erect supine prone
    upright weight bearing wb ext int obl oblique axial frontal view pre post scale cm mm
    inspiration expiration portable mobile sitting decubitus flex flexion extension
""".split())


_OCR_DIGITS = str.maketrans({"o": "0", "q": "0", "d": "0", "i": "1", "l": "1", "|": "1",
                             "z": "2", "s": "5", "b": "8", "g": "9"})


def _norm(word: str) -> str:
    word = re.sub(r"[^\w]", "", word.casefold())
    if sum(ch.isdigit() for ch in word) * 2 >= len(word) and word:
        word = word.translate(_OCR_DIGITS)  # mostly digits: read letters as the digit they resemble
    return word


def _date_forms(value: str) -> list[str]:
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value.strip())
    if not m:
        return []
    y, mo, d = m.groups()
    return [f"{d}{mo}{y}", f"{mo}{d}{y}", f"{y}{mo}{d}", f"{d}{mo}{y[2:]}", f"{mo}{d}{y[2:]}"]


def identifier_words(sources: dict[str, str]) -> dict[str, str]:
    """Normalised words of the identifying values (value -> its attribute), dates in every
    usual written order, for :func:`judge`."""
    words: dict[str, str] = {}
    for value, src in sources.items():
        if src == "UID":
            continue
        for form in _date_forms(value):
            words[form] = src
        joined = _norm(value)
        if len(joined) >= 4:
            words[joined] = src
        for part in re.split(r"[\s^,]+", value):
            part = _norm(part)
            if len(part) >= 3:
                words.setdefault(part, src)
    return words


def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    if min(len(a), len(b)) < 5 or abs(len(a) - len(b)) > 2:
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def beside(a: tuple, b: tuple) -> bool:
    """Whether box ``a`` lies within one and a half line heights of box ``b`` (the smaller
    of the two): a block's next line, not a marker further off."""
    reach = 1.5 * min(max(3, min(b[2], b[3])), max(3, min(a[2], a[3])))
    return (a[0] - reach < b[0] + b[2] and b[0] - reach < a[0] + a[2]
            and a[1] - reach < b[1] + b[3] and b[1] - reach < a[1] + a[3])


def judge(region, words: dict[str, str]) -> None:
    """Set ``region.verdict`` and ``region.why`` (see the module docstring)."""
    tokens = [t for t in re.split(r"[\s^,;]+", region.text) if t]
    if region.text == UNREAD:
        region.text, region.verdict, region.why = "", "unsure", "letters OCR could not read"
        return
    if not tokens:
        region.verdict, region.why = "harmless", "nothing read"
        return
    normed = [_norm(t) for t in tokens]
    candidates = [n for n in normed if n]
    # Adjacent tokens joined too: OCR splits "12.03.1971" or "MRN 004 2731" into pieces.
    candidates += ["".join(normed[i:j]) for i in range(len(normed))
                   for j in range(i + 2, min(len(normed), i + 4) + 1)]
    for cand in candidates:
        for word, src in words.items():
            if _similar(cand, word):
                region.verdict, region.why = "identifying", f"the {src} value"
                return
    # OCR puts spaces into dates ("23.05. 2015"): closed up before the patterns look.
    _, kinds = free_text.clean(re.sub(r"\s*([./-])\s*", r"\1", region.text))
    if any(k in (free_text.DATE, free_text.RECORD, free_text.PHONE, free_text.EMAIL)
           for k in kinds):
        region.verdict, region.why = "identifying", kinds[0]
        return
    if all(_norm(t) in MARKERS or len(_norm(t)) <= 1 for t in tokens):
        region.verdict, region.why = "harmless", "marker"
        return
    if sum(ch.isalnum() for ch in region.text) < 3 and not any(ch.isdigit() for ch in region.text):
        region.verdict, region.why = "harmless", "too short to identify"
        return
    if region.faint and (region.middle or sum(ch.isdigit() for ch in region.text) < 4):
        # Texture OCR half-reads (bone, noise) is not text; four digits are (a date, an ID),
        # except in the image's middle, where only text read with confidence counts.
        region.verdict, region.why = "harmless", "read with low confidence, matches nothing"
        return
    region.verdict, region.why = "unsure", "unrecognised text"
