"""Pictures for the browser: DICOM → PNG by the model's own pixel pipeline, heat-map colouring.

Radiographs, CT and MR slices all go through ``bonebase.dataset.export.render_png`` (modality
LUT → VOI LUT/window → MONOCHROME1 → longest side scaled, padded square), the exact pixels the
model was trained on, so a Grad-CAM map (in model input geometry) lies on them without shifting.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

SIZES = (128, 256, 512, 1024)


def render(dicom_bytes: bytes, size: int) -> bytes:
    """An 8-bit grayscale PNG, ``size`` × ``size``, of one stored instance."""
    from bonebase.dataset.export import render_png

    return render_png(dicom_bytes, size=size, bits=8)


@lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    # A perceptual colour map (inferno): dark = low attention, yellow = high.
    from matplotlib import colormaps

    return (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def heat_colour(gray_png: bytes) -> bytes:
    """The service's grayscale heat map as an opaque colour PNG (the page's slider blends it)."""
    from PIL import Image

    with Image.open(io.BytesIO(gray_png)) as im:
        heat = np.asarray(im.convert("L"))
    buf = io.BytesIO()
    Image.fromarray(_palette()[heat], "RGB").save(buf, "PNG")
    return buf.getvalue()
