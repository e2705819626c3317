"""The burned-in text step's cheaper arithmetic (issue #19) gives the values of what it
replaced: the 9 x 9 grey opening and the 8-bit median of text_contrast, and along_line with
the tiles' groups made once per image. No Tesseract needed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from bonebase.dicom.burned_in_image import along_line, median8, opening9

SHAPES = [(1, 1), (1, 9), (7, 1), (2, 3), (3, 10), (8, 17), (9, 9), (10, 4), (37, 53),
          (120, 90)]


def test_opening_equals_scipys_grey_opening() -> None:
    """Edges mirrored as scipy's "reflect", down to one pixel; on noise and on strokes."""
    rng = np.random.default_rng(5)
    for h, w in SHAPES:
        noise = rng.integers(0, 256, (h, w)).astype(np.uint8)
        strokes = np.zeros((h, w), np.uint8)
        strokes[::4, :] = 200
        strokes[:, ::5] = 90
        for img in (noise, strokes, noise // 8 + strokes // 2):
            assert np.array_equal(opening9(img), ndimage.grey_opening(img, size=(9, 9))), (h, w)


def test_median8_equals_numpys_median() -> None:
    """Odd and even counts (the mean of the two middle values), flat images, one pixel."""
    rng = np.random.default_rng(6)
    for h, w in SHAPES:
        for img in (rng.integers(0, 256, (h, w)).astype(np.uint8),
                    rng.integers(0, 3, (h, w)).astype(np.uint8) * 100,
                    np.full((h, w), 7, np.uint8)):
            assert median8(img) == float(np.median(img)), (h, w)
            diffs = np.abs(np.diff(img.astype(np.int16), axis=1))  # the pre-filter's noise
            if diffs.size:
                assert median8(diffs[::7]) == float(np.median(diffs[::7])), (h, w)


def test_along_line_with_shared_groups_equals_one_call_each() -> None:
    """The groups kept between the lines of an image give each line the box it had alone."""
    rng = np.random.default_rng(7)
    tiles = rng.random((40, 60)) < 0.25
    shape = (40 * 16, 60 * 16)
    boxes = [(int(x), int(y), int(w), int(h)) for x, y, w, h in
             zip(rng.integers(0, 900, 30), rng.integers(0, 600, 30),
                 rng.integers(5, 200, 30), rng.integers(5, 200, 30), strict=True)]
    shared: dict = {}
    together = [along_line(b, tiles, shape, labels=shared) for b in boxes]
    assert together == [along_line(b, tiles, shape) for b in boxes]
    assert set(shared) == {True, False}  # both directions met, each made once
