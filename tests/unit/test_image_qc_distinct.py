"""The image-QC distinct-value count agrees with np.unique on every dtype it meets."""

import numpy as np
import pytest

from validation.image_qc import _distinct


@pytest.mark.parametrize(
    "sample",
    [
        np.array([3, 3, 5, -2], dtype=np.int16),
        np.random.default_rng(1).integers(0, 4096, (256, 256)).astype(np.uint16),
        np.array([0, 1 << 30], dtype=np.int64),  # a range too wide for bincount
        np.array([0.5, 0.5, 1.0]),
        np.zeros(0, dtype=np.uint8),
    ],
)
def test_distinct_equals_unique(sample):
    assert _distinct(sample) == np.unique(sample).size
