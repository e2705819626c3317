"""Identifying text burned into the pixels: found with Tesseract OCR, blacked out or held.

Which images are read (:func:`candidate`): radiographs and captures (CR, DX, SC, XC, OT, DOC
and the Secondary Capture classes) and every image that declares BurnedInAnnotation YES.

How (:func:`find_text`): the first frame is windowed to 8 bits and scaled down so that its long
side is at most :data:`OCR_SIDE` pixels (memory and time do not grow with the image). A pre-filter
looks for tiles dense in sharp edges (text strokes) in the border band (the outer quarter of
each side, where annotations are; the middle is anatomy, whose texture looks like strokes too);
an image without any costs no OCR. Tesseract
(``pytesseract``, the Debian ``tesseract-ocr`` package with its English data; nothing is
downloaded) reads the scaled copy as sparse text, upright and turned by 90° (text written along
the edge). Words are grouped into lines.

Decision (:func:`judge`): a line is identifying when one of its words matches a value of the
file's own identifying attributes (names, IDs, dates, institution, accession) tolerant of OCR
errors (case, ``^`` and punctuation, O/0 and I/1, one wrong letter in five, dates written
DD.MM.YYYY, MM/DD/YYYY, YYYY-MM-DD...), or looks like a date or a record number; it is harmless
when all its words are known markers (L, R, AP, PA, LAT, STANDING, ...). Any other text is
"unsure" and is treated like identifying text (blacked out), the conservative reading.

Action (site policy ``redact``, the default, or ``quarantine``): :func:`redact` blacks out each
identifying line with a margin in every frame, writes the pixels back (compressed syntaxes are
re-encoded losslessly where pydicom can, otherwise stored uncompressed with the transfer syntax
changed accordingly), sets BurnedInAnnotation NO and adds the method to the de-identification
method attributes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from bonebase.dicom import free_text
from bonebase.dicom.read import peek

OCR_SIDE = 1400  # pixels: the long side of the copy OCR reads
MIN_CONFIDENCE = 45  # Tesseract's word confidence (0-100) below which a word is noise
SURE = 80  # mean confidence of a line from which unrecognised text counts as text at all
_FAINT = "\x00"  # marks a line read with less confidence (see SURE) until it is judged
MOSTLY_TEXT = 0.25
BAND = 0.25  # the border band read for text: this share of each side
MIN_LETTER_TILES = 4  # tiles with strokes both ways below which an image costs no OCR
UNREAD = "\x01"  # the text of a group of letter-like marks OCR could not read  # share of the image covered by text lines beyond which it is a document
CANDIDATE_MODALITIES = frozenset({"CR", "DX", "SC", "XC", "OT", "DOC", "MG", "RF", "XA", "PX"})
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
MARKERS = frozenset("""
    l r ap pa lat lateral latero left right rt lt li re sin dex d g standing erect supine prone
    upright weight bearing wb ext int obl oblique axial frontal view pre post scale cm mm
    inspiration expiration portable mobile sitting decubitus flex flexion extension
""".split())
METHOD_TEXT = "bonebase burned-in text redacted (OCR: Tesseract)"
# CID 7050 has no code for pixel cleaning by OCR; the Clean Pixel Data option is the closest.
METHOD_CODE = ("113101", "Clean Pixel Data Option")


@dataclass
class Region:
    """A line of text on the image, in full-resolution pixels (x, y, width, height)."""

    box: tuple[int, int, int, int]
    text: str  # PHI: memory only; never stored, logged or shown
    verdict: str = "unsure"  # "identifying", "harmless" or "unsure"
    why: str = ""  # which kind of value matched ("PatientName value", "date"): safe to show
    faint: bool = False  # read with low confidence: noise unless it matches a value


@dataclass
class Finding:
    """What OCR found on one image."""

    regions: list[Region] = field(default_factory=list)
    read: bool = False  # OCR ran (the pre-filter found text-like tiles)
    text_share: float = 0.0  # share of the image covered by text lines

    @property
    def to_redact(self) -> list[Region]:
        return [r for r in self.regions if r.verdict != "harmless"]

    @property
    def mostly_text(self) -> bool:
        return self.text_share > MOSTLY_TEXT


def candidate(ds: Dataset) -> bool:
    """Whether the image is one where burned-in text is likely enough to read it.

    Read with ``peek``: ``ds`` is the source data set, whose raw elements stay as they were read."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and not peek(ds, "Rows"):
        return False
    if str(peek(ds, "BurnedInAnnotation", "") or "").upper() == "YES":
        return True
    if str(peek(ds, "SOPClassUID", "") or "").startswith(SECONDARY_CAPTURE_PREFIX):
        return True
    return str(peek(ds, "Modality", "") or "").upper() in CANDIDATE_MODALITIES


# -- the image OCR reads --------------------------------------------------------------------


def display_8bit(frame: np.ndarray, photometric: str) -> np.ndarray:
    """A frame as 8-bit grey as displayed (MONOCHROME1 inverted; colour averaged), windowed
    on its own range so that low-contrast text keeps some contrast."""
    img = frame.astype(np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(img)
    if photometric == "MONOCHROME1":
        img = 255.0 - img
    return img.astype(np.uint8)


def scaled(img: np.ndarray, side: int = OCR_SIDE) -> tuple[np.ndarray, float]:
    """``img`` with its long side at most ``side`` (area averaging), small images doubled,
    and the factor used."""
    from PIL import Image

    factor = min(2.0, side / max(img.shape))  # small images twice as large: text of 10 pixels
    if factor == 1.0:
        return img, 1.0
    size = (max(1, round(img.shape[1] * factor)), max(1, round(img.shape[0] * factor)))
    method = Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(img).resize(size, method)), factor


def text_tiles(img: np.ndarray, tile: int = 16,
               density: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """The pre-filter, on the border band (the middle is anatomy): a boolean map of
    ``tile``-sized tiles dense in sharp edges (the threshold set above the image's own noise),
    and the map of tiles with sharp edges both across and along (letters have strokes both
    ways; a bone's cortex or a collimator edge runs one way, which is why this map, not the
    first, decides whether OCR runs)."""
    g = img.astype(np.int16)
    gx = np.abs(np.diff(g, axis=1))[:-1, :]
    gy = np.abs(np.diff(g, axis=0))[:, :-1]
    threshold = max(12.0, 4.0 * float(np.median(gx)) + 6.0)
    h, w = (gx.shape[0] // tile) * tile, (gx.shape[1] // tile) * tile
    if not h or not w:
        return np.zeros((0, 0), bool), np.zeros((0, 0), bool)

    def share(edges: np.ndarray) -> np.ndarray:
        return edges[:h, :w].reshape(h // tile, tile, w // tile, tile).mean(axis=(1, 3))

    found = (share(gx > threshold) > density) | (share(gy > threshold) > density)
    # Letters have vertical strokes (edges across only) and horizontal ones (edges along
    # only); a diagonal line or a ramp's wrap has both at the same pixels, and counts for none.
    across = share((gx > threshold) & (gy < threshold / 2))
    along = share((gy > threshold) & (gx < threshold / 2))
    both = (across > density / 2) & (along > density / 2)
    ty, tx = found.shape
    by, bx = max(1, round(ty * BAND)), max(1, round(tx * BAND))
    for grid in (found, both):
        grid[by:ty - by, bx:tx - bx] = False
    return found, both


def _text_contrast(img: np.ndarray) -> np.ndarray:
    """Bright strokes on a flat background, black on white as Tesseract reads best: the image
    less its grey opening (white top-hat), so that anatomy and gradients behind the text drop
    out and low-contrast text is stretched."""
    from scipy import ndimage

    hat = img.astype(np.int16) - ndimage.grey_opening(img, size=(9, 9)).astype(np.int16)
    hat = ndimage.median_filter(hat, size=3)  # noise speckles out, strokes kept
    noise = float(np.median(hat))  # text covers far less than half of any crop
    text = hat > max(10.0, 3.0 * noise + 6.0)
    return np.where(text, 0, 255).astype(np.uint8)


def text_rects(tiles: np.ndarray, shape: tuple[int, int], tile: int = 16) -> list[tuple]:
    """Rectangles (y0, y1, x0, x1) around groups of text-like tiles, grown by two tiles so
    that no letter of a word is cut off."""
    from scipy import ndimage

    labels, _ = ndimage.label(ndimage.binary_dilation(tiles, iterations=2))
    rects = []
    for rows, cols in ndimage.find_objects(labels):
        rects.append((max(0, (rows.start - 1) * tile), min(shape[0], (rows.stop + 1) * tile),
                      max(0, (cols.start - 1) * tile), min(shape[1], (cols.stop + 1) * tile)))
    return rects


def _along_line(box: tuple, tiles: np.ndarray, shape: tuple[int, int],
                tile: int = 16) -> tuple[int, int, int, int]:
    """``box`` grown along its line over the text-like tiles it touches: the rest of a line OCR
    read in part (its end in lower contrast, a split word) is blacked out with it."""
    from scipy import ndimage

    x, y, bw, bh = box
    upright = bw >= bh
    structure = np.ones((1, 3), bool) if upright else np.ones((3, 1), bool)
    labels, _ = ndimage.label(ndimage.binary_dilation(tiles, structure=structure))
    ty0, ty1 = max(0, y // tile), min(labels.shape[0], (y + bh) // tile + 1)
    tx0, tx1 = max(0, x // tile), min(labels.shape[1], (x + bw) // tile + 1)
    touched = set(np.unique(labels[ty0:ty1, tx0:tx1])) - {0}
    if not touched:
        return box
    ys, xs = np.nonzero(np.isin(labels, list(touched)) & tiles)
    if upright:  # along the row band only: the next line may share tiles
        keep = (ys >= ty0) & (ys < ty1)
        xs = xs[keep]
        if xs.size:
            x0, x1 = min(x, int(xs.min()) * tile), max(x + bw, min(shape[1], (int(xs.max()) + 1) * tile))
            return (x0, y, x1 - x0, bh)
        return box
    keep = (xs >= tx0) & (xs < tx1)
    ys = ys[keep]
    if ys.size:
        y0, y1 = min(y, int(ys.min()) * tile), max(y + bh, min(shape[0], (int(ys.max()) + 1) * tile))
        return (x, y0, bw, y1 - y0)
    return box


def _unread(tiles: np.ndarray, letters: np.ndarray, found: list, shape: tuple[int, int],
            tile: int = 16) -> list[tuple[tuple, str]]:
    """Groups of text-like tiles that no line OCR read covers: regions without text, blacked
    out next to identifying text (see :meth:`Step.judge`), or text ``UNREAD`` when the group
    holds letter-like tiles (strokes both ways) enough for a word: unsure text."""
    from scipy import ndimage

    covered = np.zeros_like(tiles)
    for (x, y, bw, bh), _ in found:
        covered[max(0, y // tile - 1):(y + bh) // tile + 2,
                max(0, x // tile - 1):(x + bw) // tile + 2] = True
    left = tiles & ~covered
    h, w = shape
    out = []
    labels, _ = ndimage.label(ndimage.binary_dilation(left, iterations=1))
    for rows, cols in ndimage.find_objects(labels):
        y0, y1 = rows.start * tile, min(h, rows.stop * tile)
        x0, x1 = cols.start * tile, min(w, cols.stop * tile)
        ys, xs = np.nonzero(left[rows, cols])
        th, tw = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
        # One to three glyphs on one line ("R", "AP", "LAT"): a marker, which cannot identify.
        glyphs = th <= 4 and tw <= 2.2 * th
        word = int(letters[rows, cols][left[rows, cols]].sum()) >= MIN_LETTER_TILES
        out.append(((x0, y0, x1 - x0, y1 - y0), UNREAD if word and not glyphs else ""))
    return out


def _read_rects(small: np.ndarray, rects: list[tuple]) -> list[tuple[tuple, str]]:
    """OCR of every rectangle of ``small`` in one Tesseract run (each run costs ~0.2 s to
    start): the rectangles, cleaned, stacked into one image with white gaps, each upright and
    turned by 90° (text written along an edge). Boxes come back in ``small``'s pixels."""
    gap = 24
    crops = []
    for y0, y1, x0, x1 in rects:
        crop = _text_contrast(small[y0:y1, x0:x1])
        if (crop < 128).mean() < 0.002:
            continue  # no stroke left once the background is gone
        # Both ways: a corner's lines may touch text written along the edge.
        crops.append((crop, False, y0, x0, crop.shape[0]))
        crops.append((np.rot90(crop, -1), True, y0, x0, crop.shape[0]))
    if not crops:
        return []
    width = max(c[0].shape[1] for c in crops) + 2 * gap
    height = sum(c[0].shape[0] + gap for c in crops) + gap
    sheet = np.full((height, width), 255, np.uint8)
    places, top = [], gap
    for crop, *rest in crops:
        sheet[top:top + crop.shape[0], gap:gap + crop.shape[1]] = crop
        places.append((top, crop.shape[0], *rest))
        top += crop.shape[0] + gap
    found = []
    for (x, y, bw, bh), text in _ocr_lines(sheet):
        cy = y + bh / 2
        for top, ch, turned, y0, x0, orig_h in places:
            if top - gap / 2 <= cy < top + ch + gap / 2:
                x, y = x - gap, y - top
                if turned:  # back from the crop turned clockwise
                    found.append(((x0 + y, y0 + orig_h - x - bw, bh, bw), text))
                else:
                    found.append(((x0 + x, y0 + y, bw, bh), text))
                break
    return found


def _ocr_lines(img: np.ndarray) -> list[tuple[tuple[int, int, int, int], str]]:
    """Tesseract's lines of words on ``img``: ((x, y, w, h), text)."""
    import os

    import pytesseract

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # small images: threads cost more than they give
    # No second pass for light-on-dark text: the sheet is always dark text on white.
    data = pytesseract.image_to_data(img, config="--psm 11 -c tessedit_do_invert=0",
                                     output_type=pytesseract.Output.DICT)
    lines: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        digits = sum(ch.isdigit() for ch in word)
        # A number read poorly still counts (a date or an ID is judged by its pattern).
        if not word.strip() or float(data["conf"][i]) < (0 if digits >= 3 else MIN_CONFIDENCE):
            continue
        if not any(ch.isalnum() for ch in word):
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append(i)
    out = []
    for idx in lines.values():
        x0 = min(data["left"][i] for i in idx)
        y0 = min(data["top"][i] for i in idx)
        x1 = max(data["left"][i] + data["width"][i] for i in idx)
        y1 = max(data["top"][i] + data["height"][i] for i in idx)
        text = " ".join(data["text"][i] for i in idx)
        confidence = sum(float(data["conf"][i]) for i in idx) / len(idx)
        out.append(((x0, y0, x1 - x0, y1 - y0), text if confidence >= SURE else _FAINT + text))
    return out


def find_text(frame: np.ndarray, photometric: str = "MONOCHROME2", *, step: int = 1) -> Finding:
    """OCR of one frame, regions in full-resolution pixels (``frame`` may be every
    ``step``-th row and column of the image)."""
    small, factor = scaled(display_8bit(frame, photometric))
    factor /= step
    finding = Finding()
    tiles, letters = text_tiles(small)
    if letters.sum() < MIN_LETTER_TILES:
        return finding
    finding.read = True
    rects = text_rects(tiles, small.shape)
    found = _read_rects(small, rects)
    found += _unread(tiles, letters, found, small.shape)
    text_mask = np.zeros(small.shape, bool)
    for (x, y, bw, bh), text in found:
        if not text.startswith(_FAINT) and sum(ch.isalnum() for ch in text) >= 3:  # words
            text_mask[y:y + bh, x:x + bw] = True
    for box, text in found:
        x, y, bw, bh = _along_line(box, tiles, small.shape)
        box = (int(x / factor), int(y / factor), int(np.ceil(bw / factor)),
               int(np.ceil(bh / factor)))
        faint = text.startswith(_FAINT)
        finding.regions.append(Region(box, text.removeprefix(_FAINT), faint=faint))
    finding.text_share = float(text_mask.mean())
    return finding


# -- which text identifies ------------------------------------------------------------------


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


def _beside(a: tuple, b: tuple) -> bool:
    """Whether box ``a`` lies within two line heights of box ``b``."""
    reach = 2 * min(max(3, min(b[2], b[3])), max(3, min(a[2], a[3])))
    return (a[0] - reach < b[0] + b[2] and b[0] - reach < a[0] + a[2]
            and a[1] - reach < b[1] + b[3] and b[1] - reach < a[1] + a[3])


def judge(region: Region, words: dict[str, str]) -> None:
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
    _, kinds = free_text.clean(region.text)
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
    if region.faint:  # texture OCR half-reads (bone, noise) is not text
        region.verdict, region.why = "harmless", "read with low confidence, matches nothing"
        return
    region.verdict, region.why = "unsure", "unrecognised text"


# -- black boxes -----------------------------------------------------------------------------


def black_value(ds: Dataset, dtype: np.dtype) -> int:
    """The stored value displayed black: the lowest for MONOCHROME2 and colour, the highest
    for MONOCHROME1."""
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    stored = int(ds.get("BitsStored", 8 * dtype.itemsize) or 8 * dtype.itemsize)
    lo, hi = (-(1 << (stored - 1)), (1 << (stored - 1)) - 1) if signed else (0, (1 << stored) - 1)
    return hi if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1" else lo


def margin_box(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown by half its height (at least 4 pixels) on every side, inside the image."""
    x, y, w, h = box
    m = max(4, h // 2)
    return (max(0, x - m), max(0, y - m), min(shape[1], x + w + m), min(shape[0], y + h + m))


def redact(ds: Dataset, regions: list[Region]) -> Dataset:
    """Black out ``regions`` in every frame of ``ds`` (changed in place and returned)."""
    from pydicom.pixels import set_pixel_data

    arr = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    plane_shape = arr.shape[1:3] if frames > 1 else arr.shape[:2]
    black = black_value(ds, arr.dtype)
    for region in regions:
        x0, y0, x1, y1 = margin_box(region.box, plane_shape)
        if frames > 1:
            arr[:, y0:y1, x0:x1, ...] = black
        else:
            arr[y0:y1, x0:x1, ...] = black
    syntax = ds.file_meta.TransferSyntaxUID if "file_meta" in ds.__dict__ or hasattr(
        ds, "file_meta") else ExplicitVRLittleEndian
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples == 3 and photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converts YBR to RGB
    bits = int(ds.get("BitsStored", 8 * arr.dtype.itemsize))
    if syntax.is_compressed and syntax.is_encapsulated:
        try:
            ds.compress(syntax, arr, photometric_interpretation=photometric,
                        generate_instance_uid=False)
        except Exception:  # noqa: BLE001 - no encoder for this syntax (e.g. lossy JPEG)
            _store_native(ds, arr, photometric, bits, set_pixel_data)
    else:
        _store_native(ds, arr, photometric, bits, set_pixel_data)
    ds.BurnedInAnnotation = "NO"
    return ds


def _store_native(ds: Dataset, arr: np.ndarray, photometric: str, bits: int, setter) -> None:
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    setter(ds, arr, photometric, bits, generate_instance_uid=False)


def add_method(ds: Dataset) -> None:
    """Record the pixel cleaning in the de-identification method attributes."""
    methods = ds.get("DeidentificationMethod", [])
    methods = [methods] if isinstance(methods, str) else list(methods)
    if METHOD_TEXT not in methods:
        ds.DeidentificationMethod = [*methods, METHOD_TEXT]
    codes = ds.get("DeidentificationMethodCodeSequence")
    if codes is None:
        ds.DeidentificationMethodCodeSequence = pydicom.Sequence()
        codes = ds.DeidentificationMethodCodeSequence
    if not any(str(c.get("CodeValue", "")) == METHOD_CODE[0] for c in codes):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator = METHOD_CODE[0], "DCM"
        item.CodeMeaning = METHOD_CODE[1]
        codes.append(item)


@dataclass
class Step:
    """The burned-in text step on one image: what OCR found, the verdicts, what was done."""

    finding: Finding
    redacted: bool = False

    @property
    def regions(self) -> list[Region]:
        """The regions to black out (identifying and unsure)."""
        return self.finding.to_redact

    def judge(self, sources: dict[str, str]) -> None:
        words = identifier_words(sources)
        for region in self.finding.regions:
            judge(region, words)
        # Text beside identifying text (a garbled line of the same block, marks OCR could
        # not read) goes with it: annotation blocks hold one patient's data.
        sure = [r for r in self.finding.regions if r.verdict == "identifying"]
        for region in self.finding.regions:
            if region.verdict == "harmless" and region.why != "marker" and any(
                    _beside(region.box, other.box) for other in sure):
                region.verdict, region.why = "identifying", "text beside identifying text"

    def described(self) -> str:
        """The regions to black out as safe words: how many, and what they matched."""
        whys = sorted({r.why for r in self.regions})
        return f"{len(self.regions)} text region(s): " + ", ".join(whys)

    def summary(self) -> dict:
        """What the receipt may say about this image (no text, no coordinates)."""
        verdicts = [r.verdict for r in self.finding.regions]
        return {"read": self.finding.read, "redacted": self.redacted,
                "identifying": verdicts.count("identifying"), "unsure": verdicts.count("unsure"),
                "markers": verdicts.count("harmless")}


def first_frame(ds: Dataset) -> np.ndarray:
    """The first frame of ``ds`` decoded (only that frame where the syntax allows)."""
    from pydicom.pixels import pixel_array

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixel_array(ds, index=0) if frames > 1 else ds.pixel_array


def tesseract_available() -> bool:
    """Whether the Tesseract program (Debian package tesseract-ocr) can be run."""
    import pytesseract

    try:
        pytesseract.get_tesseract_version()
    except Exception:  # noqa: BLE001 - not installed, not runnable
        return False
    return True


def apply(source: Dataset, result, *, policy: str = "redact") -> Step | None:
    """The step on a data set held whole (the hospital gateway's path; ingest streams files
    and uses bonebase.ingest.process): ``result`` is the DeidResult of ``source``, whose
    dataset holds Pixel Data. Returns None for an image that is no candidate; else the Step,
    with ``redacted`` True when ``result.dataset`` was blacked out (policy "redact"). With
    policy "quarantine", or an image that is mostly text, the caller holds the image
    (``step.regions`` non-empty / ``step.finding.mostly_text``)."""
    if not candidate(source):
        return None
    step = Step(find_text(first_frame(source), str(source.get("PhotometricInterpretation", ""))))
    step.judge(result.sources)
    if step.regions and not step.finding.mostly_text and policy == "redact":
        redact(result.dataset, step.regions)
        add_method(result.dataset)
        step.redacted = True
    return step
