"""Where text may be on an image, before any OCR: the 8-bit copy, the pre-filter's tiles of
sharp strokes, the rectangles OCR reads and the groups of strokes no line OCR read covers.

Geometry: everything is in the pixels of the image OCR reads (its long side about
:data:`OCR_SIDE`; small images twice as large), in tiles of :data:`TILE` of those pixels. The
pre-filter does not enlarge the image for that: it runs on the image as it is (scaled down when
larger), with tiles as many pixels of it as :data:`TILE` pixels of OCR's copy; only the
rectangles OCR reads are enlarged (:meth:`Page.crop`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OCR_SIDE = 1400  # pixels: the long side of the copy OCR reads
TILE = 16  # pixels of OCR's copy per tile of the pre-filter
BAND = 0.25  # the border band read for text: this share of each side
MIN_LETTER_TILES = 4  # tiles with strokes both ways below which an image costs no OCR
WORD_DENSITY = 0.5  # share of a group's tiles that are letter-like for it to be a word
UNREAD = "\x01"  # the text of a group of letter-like marks OCR could not read


def block_factor(long_side: int, side: int = OCR_SIDE) -> int:
    """The whole factor k that brings an image's long side nearest ``side`` (k x k blocks are
    averaged into one pixel of OCR's copy)."""
    return max(1, round(long_side / side))


def reduced(frame: np.ndarray, side: int = OCR_SIDE) -> tuple[np.ndarray, int]:
    """``frame`` averaged over k x k blocks (float32), k its :func:`block_factor`, and k: a
    large radiograph costs the pre-filter one pass over its stored values, not a float copy of
    them and a resampling."""
    k = block_factor(max(frame.shape[:2]), side)
    if k == 1:
        return frame, 1
    h, w = frame.shape[:2]
    pad = ((0, -h % k), (0, -w % k)) + ((0, 0),) * (frame.ndim - 2)
    if any(p[1] for p in pad):
        frame = np.pad(frame, pad, mode="edge")  # the last rows and columns kept whole
    out = frame[::k, ::k].astype(np.float32)  # k x k strided views summed: one pass, no
    for dy in range(k):  # reduction over non-contiguous axes (three times slower)
        for dx in range(k):
            if dy or dx:
                out += frame[dy::k, dx::k]
    return out / (k * k), k


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


def _resize(img: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image

    if factor == 1.0:
        return img
    size = (max(1, round(img.shape[1] * factor)), max(1, round(img.shape[0] * factor)))
    method = Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(img).resize(size, method))


@dataclass
class Page:
    """The image the pre-filter reads (``img``, at most OCR_SIDE) and the factor ``up`` from
    it to the copy OCR reads: a tile is ``tile`` pixels of ``img``, TILE of OCR's copy."""

    img: np.ndarray
    up: float  # OCR's copy = img enlarged by this (1 or more)
    tile: int
    factor: float  # OCR's copy = the frame scaled by this

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of OCR's copy (which is never made whole)."""
        return (int(self.img.shape[0] * self.up), int(self.img.shape[1] * self.up))

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Part of OCR's copy, in its pixels: cut from ``img`` and enlarged."""
        u = self.up
        part = self.img[int(y0 / u):int(np.ceil(y1 / u)), int(x0 / u):int(np.ceil(x1 / u))]
        return _resize(part, u)


def page(img: np.ndarray, side: int = OCR_SIDE) -> Page:
    """The pre-filter's image of an 8-bit frame: scaled down to ``side`` when larger; a small
    image is kept as it is, OCR reading its text rectangles up to twice as large."""
    factor = min(2.0, side / max(img.shape))
    if factor <= 1.0:
        return Page(_resize(img, factor), 1.0, TILE, factor)
    tile = max(TILE // 2, min(TILE, round(TILE / factor)))  # whole pixels per tile
    return Page(img, TILE / tile, tile, TILE / tile)


def text_tiles(img: np.ndarray, tile: int = TILE, density: float = 0.04,
               gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The pre-filter: a boolean map of
    ``tile``-sized tiles dense in sharp edges (the threshold set above the image's own noise),
    and the map of tiles with sharp edges both across and along (letters have strokes both
    ways; a bone's cortex or a collimator edge runs one way, which is why this map, not the
    first, decides whether OCR runs). ``gain`` raises the edge threshold: on an image OCR
    reads enlarged (:class:`Page`), by ``up``, since enlarging spreads each edge over that
    many pixels (the same tiles are found as on the enlarged copy, at a quarter of the cost)."""
    h, w = ((img.shape[0] - 1) // tile) * tile, ((img.shape[1] - 1) // tile) * tile
    if not h or not w:
        return np.zeros((0, 0), bool), np.zeros((0, 0), bool)
    g = img[:h + 1, :w + 1].astype(np.int16)
    gx = np.abs(np.diff(g, axis=1))[:-1, :]
    gy = np.abs(np.diff(g, axis=0))[:, :-1]
    # The image's noise from a sample of rows (a median over every pixel costs more than all
    # the rest of the pre-filter).
    threshold = gain * max(12.0, 4.0 * median8(gx[::7]) + 6.0)
    ex, ey = gx > threshold, gy > threshold

    def share(edges: np.ndarray) -> np.ndarray:
        # Counted in bytes (a tile's row holds at most TILE edges): the tile's rows added as
        # whole rows of the image, then each tile's columns; five times cheaper than a sum
        # over two strided axes at once.
        rows = edges.view(np.uint8).reshape(h // tile, tile, w // tile, tile)
        counts = rows[:, 0].copy()
        for i in range(1, tile):
            counts += rows[:, i]
        return counts.sum(axis=2, dtype=np.int32) / float(tile * tile)

    found = (share(ex) > density) | (share(ey) > density)
    # Letters have vertical strokes (edges across only) and horizontal ones (edges along
    # only); a diagonal line or a ramp's wrap has both at the same pixels, and counts for none.
    across = share(ex & (gy < threshold / 2))
    along = share(ey & (gx < threshold / 2))
    both = (across > density / 2) & (along > density / 2)
    return found, both


def border(shape: tuple[int, int]) -> np.ndarray:
    """The tiles of the border band (the outer BAND of each side), where annotations are."""
    ty, tx = shape
    band = np.ones(shape, bool)
    by, bx = max(1, round(ty * BAND)), max(1, round(tx * BAND))
    band[by:ty - by, bx:tx - bx] = False
    return band


def text_contrast(img: np.ndarray) -> np.ndarray:
    """Bright strokes on a flat background, black on white as Tesseract reads best: the image
    less its grey opening (white top-hat), so that anatomy and gradients behind the text drop
    out and low-contrast text is stretched."""
    hat = img - opening9(img)  # >= 0: an opening is below the image
    hat = median3(hat)  # noise speckles out, strokes kept
    noise = median8(hat)  # text covers far less than half of any crop
    text = hat > max(10.0, 3.0 * noise + 6.0)
    return np.where(text, 0, 255).astype(np.uint8)


def _run9(img: np.ndarray, axis: int, op) -> np.ndarray:
    """The minimum (``op`` np.minimum) or maximum over the 9 values centred on each pixel
    along ``axis``, edges mirrored (scipy.ndimage's "reflect"): runs of 2, 4, 8 and 9 from
    shifted views, four whole-array operations instead of scipy's per-line filter."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (4, 4)
    p = np.pad(img, pad, mode="symmetric")
    n = img.shape[axis]

    def part(a: np.ndarray, start: int, length: int) -> np.ndarray:
        return a[start:start + length] if axis == 0 else a[:, start:start + length]

    m2 = op(part(p, 0, n + 7), part(p, 1, n + 7))
    m4 = op(part(m2, 0, n + 5), part(m2, 2, n + 5))
    m8 = op(part(m4, 0, n + 1), part(m4, 4, n + 1))
    return op(part(m8, 0, n), part(p, 8, n))


def opening9(img: np.ndarray) -> np.ndarray:
    """The grey opening of a 2-D image by a 9 x 9 square: the same values as
    ``scipy.ndimage.grey_opening(img, size=(9, 9))``, three times faster (it cost two thirds
    of :func:`text_contrast`)."""
    eroded = _run9(_run9(img, 0, np.minimum), 1, np.minimum)
    return _run9(_run9(eroded, 0, np.maximum), 1, np.maximum)


def median8(img: np.ndarray) -> float:
    """``float(np.median(img))`` of an image of whole numbers 0-255 (8-bit, or the
    int16 differences of an 8-bit image), from its histogram (twice as fast)."""
    n = img.size
    cum = np.cumsum(np.bincount(img.ravel(), minlength=256))
    lo = int(np.searchsorted(cum, (n - 1) // 2, side="right"))
    hi = int(np.searchsorted(cum, n // 2, side="right"))
    return (lo + hi) / 2


# Paeth's network: 19 compare-exchanges leave the median of 9 values in place 4.
_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
            (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3(img: np.ndarray) -> np.ndarray:
    """The 3 x 3 median of an 8-bit image, edges replicated: the same values as Pillow's
    MedianFilter(3), by a sorting network over the nine shifted copies (thirty times faster
    than Pillow's rank filter, which cost most of :func:`text_contrast`)."""
    m = np.pad(img, 1, mode="edge")
    h, w = img.shape
    v = [m[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    for a, b in _MEDIAN9:
        v[a], v[b] = np.minimum(v[a], v[b]), np.maximum(v[a], v[b])
    return v[4]


def text_rects(tiles: np.ndarray, shape: tuple[int, int], tile: int = TILE) -> list[tuple]:
    """Rectangles (y0, y1, x0, x1) around groups of text-like tiles, grown by two tiles so
    that no letter of a word is cut off."""
    from scipy import ndimage

    labels, _ = ndimage.label(ndimage.binary_dilation(tiles, iterations=2))
    rects = []
    for rows, cols in ndimage.find_objects(labels):
        rects.append((max(0, (rows.start - 1) * tile), min(shape[0], (rows.stop + 1) * tile),
                      max(0, (cols.start - 1) * tile), min(shape[1], (cols.stop + 1) * tile)))
    return rects


def line_labels(tiles: np.ndarray, upright: bool) -> np.ndarray:
    """The groups of ``tiles`` joined along rows (``upright``) or columns, for
    :func:`along_line` (the same for every line of an image: made once)."""
    from scipy import ndimage

    structure = np.ones((1, 3), bool) if upright else np.ones((3, 1), bool)
    return ndimage.label(ndimage.binary_dilation(tiles, structure=structure))[0]


def along_line(box: tuple, tiles: np.ndarray, shape: tuple[int, int],
               tile: int = TILE, labels: dict | None = None) -> tuple[int, int, int, int]:
    """``box`` grown along its line over the text-like tiles it touches: the rest of a line OCR
    read in part (its end in lower contrast, a split word) is blacked out with it. ``labels``:
    a dict kept by the caller for the lines of one image, {upright: :func:`line_labels`}."""
    x, y, bw, bh = box
    upright = bw >= bh
    labels = {} if labels is None else labels
    if upright not in labels:
        labels[upright] = line_labels(tiles, upright)
    labels = labels[upright]
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
            x0 = min(x, int(xs.min()) * tile)
            x1 = max(x + bw, min(shape[1], (int(xs.max()) + 1) * tile))
            return (x0, y, x1 - x0, bh)
        return box
    keep = (xs >= tx0) & (xs < tx1)
    ys = ys[keep]
    if ys.size:
        y0 = min(y, int(ys.min()) * tile)
        y1 = max(y + bh, min(shape[0], (int(ys.max()) + 1) * tile))
        return (x, y0, bw, y1 - y0)
    return box


def unread(tiles: np.ndarray, letters: np.ndarray, found: list, shape: tuple[int, int],
           tile: int = TILE) -> list[tuple[tuple, str]]:
    # (``tiles`` and ``letters``: the border band's only; in the middle, anatomy's texture
    # has strokes both ways too, and only text OCR reads counts)
    """Groups of text-like tiles that no line OCR read covers: regions without text, blacked
    out next to identifying text (see ``Step.judge``), or text ``UNREAD`` when the group
    holds letter-like tiles (strokes both ways) enough for a word: unsure text.

    A read line covers its own rows of tiles and one tile to either end; the rows above and
    below it that it does not cover (the next line of a tightly set block) are groups of
    their own, but only letters more than a tile away from every read line make a word."""
    from scipy import ndimage

    covered = np.zeros_like(tiles)  # the read lines' tiles, one more along the line
    near = np.zeros_like(tiles)  # the same, one more all round
    for (x, y, bw, bh), _ in found:
        rows = slice(y // tile, -(-(y + bh) // tile))
        upright = bw >= bh
        covered[rows if upright else slice(max(0, y // tile - 1), -(-(y + bh) // tile) + 1),
                slice(max(0, x // tile - 1), -(-(x + bw) // tile) + 1) if upright
                else slice(x // tile, -(-(x + bw) // tile))] = True
        near[max(0, y // tile - 1):-(-(y + bh) // tile) + 1,
             max(0, x // tile - 1):-(-(x + bw) // tile) + 1] = True
    left = tiles & ~covered
    h, w = shape
    out = []
    labels, _ = ndimage.label(ndimage.binary_dilation(left, iterations=1))
    for rows, cols in ndimage.find_objects(labels):
        y0, y1 = rows.start * tile, min(h, rows.stop * tile)
        x0, x1 = cols.start * tile, min(w, cols.stop * tile)
        part = left[rows, cols]
        ys, xs = np.nonzero(part)
        th, tw = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
        # One to three glyphs on one line ("R", "AP", "LAT"): a marker, which cannot identify.
        glyphs = th <= 4 and tw <= 2.2 * th
        own = letters[rows, cols] & part
        # A word: letters enough, and most of the group's tiles letter-like (text is dense in
        # strokes both ways; bone's texture scatters a few such tiles among many others).
        word = (int((own & ~near[rows, cols]).sum()) >= MIN_LETTER_TILES
                and own.sum() >= WORD_DENSITY * part.sum())
        out.append(((x0, y0, x1 - x0, y1 - y0), UNREAD if word and not glyphs else ""))
    return out
