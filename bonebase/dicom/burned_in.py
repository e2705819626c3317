"""Identifying text burned into the pixels: found with Tesseract OCR, blacked out or held.

Which images are read (:func:`candidate`): radiographs and captures (CR, DX, SC, XC, OT, DOC
and the Secondary Capture classes) and every image that declares BurnedInAnnotation YES.

How (:func:`find_text`): the first frame is windowed to 8 bits; a pre-filter
(:mod:`.burned_in_image`) looks for tiles dense in sharp edges (text strokes) in the border band
(the outer quarter of each side, where annotations are; the middle is anatomy, whose texture
looks like strokes too), on the image as it is or scaled down to :data:`OCR_SIDE`; an image
without letter-like tiles costs no OCR. Tesseract (:mod:`.burned_in_ocr`: in-process through
``tesserocr``, the Debian English data; nothing is downloaded) reads only the rectangles around
those tiles, enlarged so that small text is about 20 pixels high, upright or turned by 90°
(text written along the edge) as their shape says. Words are grouped into lines.

Decision (:mod:`.burned_in_judge`): identifying when it matches a value of the file's own
identifying attributes or looks like a date or a record number; harmless when all its words
are known markers; any other text is "unsure" and is treated like identifying text (blacked
out), the conservative reading.

Action (site policy ``redact``, the default, or ``quarantine``): :func:`redact`
(:mod:`.burned_in_redact`) blacks out each identifying line with a margin in every frame,
writes the pixels back, sets BurnedInAnnotation NO and adds the method to the
de-identification method attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from bonebase.dicom.burned_in_image import (
    MIN_LETTER_TILES,
    OCR_SIDE,
    TILE,
    UNREAD,
    along_line,
    border,
    display_8bit,
    page,
    reduced,
    text_rects,
    text_tiles,
    unread,
)
from bonebase.dicom.burned_in_judge import MARKERS, beside, identifier_words, judge
from bonebase.dicom.burned_in_ocr import FAINT, read_rects
from bonebase.dicom.burned_in_redact import (
    METHOD_CODE,
    METHOD_TEXT,
    add_method,
    black_value,
    margin_box,
    redact,
)
from bonebase.dicom.read import peek

__all__ = ["CANDIDATE_MODALITIES", "MARKERS", "METHOD_CODE", "METHOD_TEXT", "OCR_SIDE", "UNREAD",
           "Finding", "Region", "Step", "add_method", "apply", "black_value", "candidate",
           "display_8bit", "find_text", "find_text_frames", "first_frame", "frames", "judge",
           "margin_box", "redact", "tesseract_available"]

MOSTLY_TEXT = 0.25  # share of the image covered by text lines beyond which it is a document
CANDIDATE_MODALITIES = frozenset({"CR", "DX", "SC", "XC", "OT", "DOC", "MG", "RF", "XA", "PX"})
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


@dataclass
class Region:
    """A line of text on the image, in full-resolution pixels (x, y, width, height)."""

    box: tuple[int, int, int, int]
    text: str  # PHI: memory only; never stored, logged or shown
    verdict: str = "unsure"  # "identifying", "harmless" or "unsure"
    why: str = ""  # which kind of value matched ("PatientName value", "date"): safe to show
    faint: bool = False  # read with low confidence: noise unless it matches a value
    middle: bool = False  # in the image's middle (anatomy), not its border band


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


def find_text(frame: np.ndarray, photometric: str = "MONOCHROME2", *, step: int = 1,
              ocr: bool = True) -> Finding:
    """OCR of one frame, regions in full-resolution pixels (``frame`` may be every
    ``step``-th row and column of the image). ``ocr`` False: the pre-filter only (``read``
    says whether OCR would run; no regions)."""
    small, k = reduced(frame)
    pg = page(display_8bit(small, photometric))
    factor = pg.factor / (step * k)
    finding = Finding()
    tiles, letters = text_tiles(pg.img, pg.tile, gain=pg.up)
    band = border(tiles.shape)
    words = _middle_words(tiles & ~band, letters)
    if (letters & band).sum() < MIN_LETTER_TILES and not words.any():
        return finding
    finding.read = True
    if not ocr:
        return finding
    shape = pg.shape
    tiles = (tiles & band) | words
    found = read_rects(pg, text_rects(tiles, shape))
    found += unread(tiles & band, letters & band, found, shape)
    text_mask = np.zeros(pg.img.shape, bool)  # in the pre-filter's pixels
    for (x, y, bw, bh), text in found:
        if not text.startswith(FAINT) and sum(ch.isalnum() for ch in text) >= 3:  # words
            u = pg.up
            text_mask[int(y / u):int((y + bh) / u), int(x / u):int((x + bw) / u)] = True
    lines: dict = {}  # the tiles' groups along rows and along columns, made once
    for box, text in found:
        x, y, bw, bh = along_line(box, tiles, shape, labels=lines)
        middle = not band[min(band.shape[0] - 1, (y + bh // 2) // TILE),
                          min(band.shape[1] - 1, (x + bw // 2) // TILE)]
        box = (int(x / factor), int(y / factor), int(np.ceil(bw / factor)),
               int(np.ceil(bh / factor)))
        faint = text.startswith(FAINT)
        finding.regions.append(Region(box, text.removeprefix(FAINT), faint=faint,
                                      middle=middle))
    finding.text_share = float(text_mask.mean()) if text_mask.size else 0.0
    return finding


def find_text_frames(frames: Iterable[np.ndarray], photometric: str = "MONOCHROME2", *,
                     step: int = 1) -> Finding:
    """:func:`find_text` over every frame of a multi-frame image, one frame in memory at a
    time: the first frame is read; a later frame only when the pre-filter finds letter-like
    tiles there that no frame read so far had (text that changes or appears from frame to
    frame: a frame number, a time, an overlay). The regions of every frame read, in one
    Finding (:func:`redact` blacks each out in every frame)."""
    finding, seen = Finding(), None
    for frame in frames:
        pg = page(display_8bit(reduced(frame)[0], photometric))
        _, letters = text_tiles(pg.img, pg.tile, gain=pg.up)
        if seen is not None and (letters & ~seen).sum() < MIN_LETTER_TILES:
            continue  # nothing new on this frame: no OCR
        seen = letters if seen is None else seen | letters
        one = find_text(frame, photometric, step=step)
        finding.read |= one.read
        finding.text_share = max(finding.text_share, one.text_share)
        finding.regions += [r for r in one.regions
                            if not any(_same(r.box, o.box) for o in finding.regions)]
    return finding


def _same(a: tuple, b: tuple) -> bool:
    """Whether two boxes are the same text's (most of the smaller inside the other)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return w > 0 and h > 0 and w * h >= 0.8 * min(a[2] * a[3], b[2] * b[3])


def _middle_words(tiles: np.ndarray, letters: np.ndarray) -> np.ndarray:
    """The middle's groups of text-like tiles with letter-like tiles enough for a word: what
    OCR reads there (text written across the image); the rest of the middle is anatomy."""
    from scipy import ndimage

    labels, count = ndimage.label(ndimage.binary_dilation(tiles, iterations=1))
    if not count:
        return np.zeros_like(tiles)
    per_group = ndimage.sum_labels(letters & tiles, labels, index=np.arange(1, count + 1))
    keep = np.concatenate(([False], per_group >= MIN_LETTER_TILES))
    return keep[labels] & tiles


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
        if not self.finding.regions:  # nothing read (most images): no words to make
            return
        words = identifier_words(sources)
        for region in self.finding.regions:
            judge(region, words)
        # Text beside text that is blacked out (a garbled line of the same block, marks OCR
        # could not read) goes with it: annotation blocks hold one patient's data.
        # Line by line down the block: until no more is added.
        sure = [r for r in self.finding.regions if r.verdict == "identifying"
                or (r.verdict == "unsure" and r.text)]
        while sure:
            added = []
            for region in self.finding.regions:
                if region.verdict == "harmless" and region.why != "marker" and any(
                        beside(region.box, other.box) for other in sure):
                    region.verdict, region.why = "identifying", "text beside text blacked out"
                    added.append(region)
            sure = added

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


def frames(ds: Dataset) -> Iterable[np.ndarray]:
    """Every frame of ``ds``, decoded one at a time."""
    from pydicom.pixels import iter_pixels

    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        yield ds.pixel_array
        return
    yield from iter_pixels(ds)


def tesseract_available() -> bool:
    """Whether Tesseract can read (in-process with tesserocr, else the tesseract program)."""
    from bonebase.dicom import burned_in_ocr

    return burned_in_ocr.available()


def apply(source: Dataset, result, *, policy: str = "redact") -> Step | None:
    """The step on a data set held whole (the hospital gateway's path; ingest streams files
    and uses bonebase.ingest.process): ``result`` is the DeidResult of ``source``, whose
    dataset holds Pixel Data. Returns None for an image that is no candidate; else the Step,
    with ``redacted`` True when ``result.dataset`` was blacked out (policy "redact"). With
    policy "quarantine", or an image that is mostly text, the caller holds the image
    (``step.regions`` non-empty / ``step.finding.mostly_text``)."""
    if not candidate(source):
        return None
    photometric = str(source.get("PhotometricInterpretation", ""))
    step = Step(find_text_frames(frames(source), photometric))
    step.judge(result.sources)
    if step.regions and not step.finding.mostly_text and policy == "redact":
        redact(result.dataset, step.regions)
        add_method(result.dataset)
        step.redacted = True
    return step
