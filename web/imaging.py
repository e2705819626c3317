"""Pictures for the browser: DICOM → PNG by the model's own pixel pipeline, heat-map colouring.

Radiographs, CT and MR slices all go through ``bonebase.dataset.export.render_png`` (modality
LUT → VOI LUT/window → MONOCHROME1 → longest side scaled, padded square), the exact pixels the
model was trained on, so a Grad-CAM map (in model input geometry) lies on them without shifting.
A multi-frame image (enhanced CT/MR, XA) is rendered one frame per request, decoding only that
frame, with the frame's own rescale and window.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache

import numpy as np
from pydicom import uid
from pydicom.errors import InvalidDicomError

from bonebase.errors import BonebaseError
from bonebase.storage import ObjectStore

log = logging.getLogger(__name__)

SIZES = (128, 256, 512, 1024)

# Storage classes whose IODs have no Multi-frame Module: always one frame, so the case page
# need not read their headers to count frames (PS3.3 A.2, A.3, A.4, A.26, A.8.1).
SINGLE_FRAME_CLASSES = frozenset(str(u) for u in (
    uid.CTImageStorage, uid.MRImageStorage, uid.ComputedRadiographyImageStorage,
    uid.DigitalXRayImageStorageForPresentation, uid.DigitalXRayImageStorageForProcessing,
    uid.DigitalMammographyXRayImageStorageForPresentation,
    uid.DigitalMammographyXRayImageStorageForProcessing, uid.SecondaryCaptureImageStorage,
))


def render(dicom_bytes: bytes, size: int, frame: int | None = None) -> bytes:
    """An 8-bit grayscale PNG, ``size`` × ``size``, of one stored instance (``frame``: 1-based
    frame of a multi-frame image; None is the first)."""
    import pydicom

    from bonebase.dataset.export import render_png
    from bonebase.dicom.pixels import frame_count

    if frame is None:
        header = pydicom.dcmread(io.BytesIO(dicom_bytes), stop_before_pixels=True)
        frame = 1 if frame_count(header) > 1 else None
    return render_png(dicom_bytes, size=size, bits=8, frame=frame)


def render_windowed(dicom_bytes: bytes, size: int, *, level: float, window: float) -> bytes:
    """:func:`render` of a single-frame image with the viewer's window and level (fractions of
    its range of modality values, :func:`bonebase.dicom.pixels.radiograph_windowed`), re-windowed
    from the stored values, not from an 8-bit picture; the same geometry, so a heat map still
    lies on it."""
    import pydicom
    from PIL import Image

    from bonebase.dicom.pixels import radiograph_windowed, resize_keep_aspect, to_uint

    img = radiograph_windowed(pydicom.dcmread(io.BytesIO(dicom_bytes)), level=level,
                              window=window)
    buf = io.BytesIO()
    Image.fromarray(to_uint(resize_keep_aspect(img, size), 8)).save(buf, format="PNG")
    return buf.getvalue()


@lru_cache(maxsize=4096)
def _frames_of_object(store: ObjectStore, object_key: str) -> int:
    # Stored objects are content-addressed and never change, so the count can be kept.
    import pydicom

    from bonebase.dicom.pixels import frame_count

    header = pydicom.dcmread(io.BytesIO(store.get_bytes(object_key)), stop_before_pixels=True)
    return frame_count(header)


def frames_of(store: ObjectStore, instance: dict) -> int:
    """How many frames a stored instance holds (``object_key``, ``sop_class_uid``); 1 for the
    single-frame storage classes, read from the header (once per object) for the others. An
    unreadable header counts as 1: the image request then says what is wrong with it."""
    if instance.get("sop_class_uid") in SINGLE_FRAME_CLASSES:
        return 1
    try:
        return _frames_of_object(store, instance["object_key"])
    except (BonebaseError, InvalidDicomError, OSError, ValueError, TypeError,
            AttributeError) as exc:
        log.warning("frames of instance %s not read: %s", instance.get("id"), type(exc).__name__)
        return 1


def outline_points(points, *, rows: int, columns: int, size: int) -> str:
    """An SVG ``points`` string placing a shape drawn on the stored image (pixel x = column,
    y = row) on its ``size`` × ``size`` picture from :func:`render`, which scales the longest
    side to ``size`` and pads the other symmetrically (bonebase.dicom.pixels.resize_keep_aspect)."""
    scale = size / max(rows, columns)
    left = (size - int(round(columns * scale))) // 2
    top = (size - int(round(rows * scale))) // 2
    return " ".join(f"{left + x * scale:.1f},{top + y * scale:.1f}" for x, y in points)


def outlines(shapes, *, rows: int | None, columns: int | None, size: int) -> list[dict]:
    """The shapes of one image for the case page: kind, label and SVG points (a rectangle as
    its four corners); none when the stored image's size is unknown."""
    if not shapes or not rows or not columns:
        return []
    out = []
    for s in shapes:
        points = s.points
        if s.kind == "rectangle":
            (x0, y0), (x1, y1) = points
            points = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        out.append({"kind": s.kind, "label": s.label,
                    "points": outline_points(points, rows=rows, columns=columns, size=size)})
    return out


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
