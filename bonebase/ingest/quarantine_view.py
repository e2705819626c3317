"""What a data steward sees of a held file before releasing or discarding it.

The quarantine keeps a held file's original bytes (:func:`bonebase.ingest.store.store_quarantine`):
they are identified. Read back here for whoever may see that site's data (the web page admits the
site's steward and admins; the CLI is for those who run bonebase and can read the store anyway):
which attributes still held which kind of identifying value, the header with what
de-identification does to each attribute, and the first frame as a PNG; an image held for
burned-in text (or as mostly text) with the regions the step finds framed on it, red where it
would black out identifying text, orange unsure, green harmless markers. Callers record each
look in the audit log (:func:`bonebase.db.quarantine.record_view`).

The original is read as ingest reads a submitted file (links refused, the pixel limit applied
from the header, one frame decoded) and de-identified again with a throwaway key: what is shown
is what happens to each attribute, never a pseudonym or a remapped UID.
"""

from __future__ import annotations

import io
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import DataElement

from bonebase.dicom import deid_scan
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_values import is_multi
from bonebase.dicom.read import DicomReadError
from bonebase.dicom.stream import DicomParts, open_parts, qc_sample
from bonebase.errors import InputError, NotFoundError
from bonebase.ingest import limits
from bonebase.storage import ObjectStore

_VALUE_CHARS = 120  # a header value is cut here on screen (an address, a long comment)
PREVIEW_SIZE = 1024  # the longest side of the preview image, in pixels


@dataclass(frozen=True)
class HeaderRow:
    """One attribute of the held original, and what de-identification does to it."""

    tag: str  # "(0010,0010)"
    keyword: str
    vr: str
    value: str  # shortened; binary values and sequences are described, not shown
    action: str  # kept, removed, emptied, replaced, changed (a sequence's items); "" if unknown
    residue: str = ""  # the kinds of identifying value this attribute holds after it


@dataclass
class HeldView:
    """A held item as its reviewer sees it; ``note`` says what cannot be shown, and why."""

    item: dict
    findings: list[deid_scan.Residue] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # other reasons to review (burned-in text...)
    header: list[HeaderRow] = field(default_factory=list)
    note: str = ""
    has_image: bool = False
    # The burned-in text step again on a held image (reason burned_in_text, not_an_image):
    # (verdict, why) of each region found, drawn on the preview (never the text read).
    text_regions: list[tuple[str, str]] = field(default_factory=list)


_TEXT_REASONS = frozenset({"burned_in_text", "not_an_image"})
_BOX_COLOURS = {"identifying": (255, 40, 40), "unsure": (255, 160, 0), "harmless": (40, 200, 80)}


def inspect(store: ObjectStore, item: dict) -> HeldView:
    """The view of quarantine ``item`` (a row of quarantine_items with its ``site`` code)."""
    view = HeldView(item)
    with _original(store, item, view) as parts:
        if parts is None:
            return view
        view.has_image = parts.pixels is not None or "PixelData" in parts.dataset
        try:
            out = Deidentifier(secrets.token_bytes(32)).deidentify(
                parts.dataset, site=item["site"], scan=False)
            # Encoded and scanned as ingest does, so the findings are those of the hold.
            out.to_bytes() if parts.pixels is None else out.encode_parts()
        except Exception as exc:  # noqa: BLE001 - InputError, or a library's on a hostile file
            view.note = (f"de-identification refuses this file: {exc}" if isinstance(exc, InputError)
                         else f"de-identification fails on this file ({exc.__class__.__name__})")
            view.header = _rows(parts.dataset, None, [])
            return view
        view.findings, view.flags = out.findings, out.needs_review
        view.header = _rows(parts.dataset, out.dataset, out.findings)
        if item.get("reason") in _TEXT_REASONS and view.has_image:
            step = _text_step(parts, out.sources, view)
            if step is not None:
                view.text_regions = [(r.verdict, r.why) for r in step.finding.regions]
    return view


def _text_step(parts: DicomParts, sources: dict[str, str], view: HeldView):
    """The burned-in text step's finding on the first frame, judged against the original's
    identifying values (``sources``), or None with ``view.note`` saying why."""
    from bonebase.dicom import burned_in

    if not burned_in.tesseract_available():
        view.note = "Tesseract is not installed here: the text regions cannot be shown"
        return None
    try:
        frame = _first_frame(parts)
    except Exception as exc:  # noqa: BLE001 - a decoder's failure on a hostile file
        view.note = f"the held image cannot be decoded ({exc.__class__.__name__})"
        return None
    photometric = str(parts.dataset.get("PhotometricInterpretation", "") or "")
    step = burned_in.Step(burned_in.find_text(frame, photometric))
    step.judge(sources)
    return step


def _draw_regions(pixels: np.ndarray, step) -> np.ndarray:
    """``pixels`` in colour with a frame around each region (with the margin redaction
    blacks out): red identifying, orange unsure, green harmless."""
    from PIL import Image, ImageDraw

    from bonebase.dicom.burned_in import margin_box

    image = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, max(pixels.shape[:2]) // 300)
    for region in step.finding.regions:
        x0, y0, x1, y1 = margin_box(region.box, pixels.shape[:2])
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), width=width,
                       outline=_BOX_COLOURS.get(region.verdict, (255, 40, 40)))
    return np.asarray(image)


def preview_png(store: ObjectStore, item: dict, *, size: int = PREVIEW_SIZE) -> bytes:
    """The held original's first frame as an 8-bit PNG, its longest side at most ``size``,
    text regions framed for an item held for its text; InputError saying why when there is
    none."""
    view = HeldView(item)
    with _original(store, item, view) as parts:
        if parts is None:
            raise InputError(view.note)
        if parts.pixels is None and "PixelData" not in parts.dataset:
            raise InputError("the held file has no image (no Pixel Data)")
        # Imported here: pixels imports MONAI (and torch), seconds that only the image needs.
        from bonebase.dicom.pixels import frame_view

        try:
            shown = _display(_first_frame(parts), frame_view(parts.dataset, 1))
        except DicomReadError as exc:
            raise InputError(f"the held image cannot be shown ({exc.reason})") from None
        except Exception as exc:  # noqa: BLE001 - a decoder's failure on a hostile file
            raise InputError("the held image cannot be decoded "
                             f"({exc.__class__.__name__})") from None
        if item.get("reason") in _TEXT_REASONS:  # the regions the step found, framed
            out = Deidentifier(secrets.token_bytes(32)).deidentify(
                parts.dataset, site=item["site"], scan=False)
            step = _text_step(parts, out.sources, view)
            if step is not None:
                shown = _draw_regions(shown, step)
        return _png(shown, size)


@contextmanager
def _original(store: ObjectStore, item: dict, view: HeldView) -> Iterator[DicomParts | None]:
    """The held original opened as ingest opens a file, or None with ``view.note`` saying why."""
    key = item.get("object_key")
    if not key:
        view.note = ("no original is kept for this item (a refused file's bytes, a link or an "
                     "over-size file, are not copied)")
        yield None
        return
    if item.get("file") is None:
        view.note = (f"a manifest row: row {item.get('row_number')} of the submission's manifest,"
                     " kept as it was sent")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bonebase-held-") as tmp:
        try:
            path = store.download(key, Path(tmp) / "held.bin")
        except NotFoundError:
            view.note = f"the original is missing from the object store ({key})"
            yield None
            return
        try:
            parts = open_parts(path, "held file", max_pixels=limits.current().max_pixels)
        except DicomReadError as exc:
            view.note = f"the original cannot be read as a DICOM image ({exc.reason})"
            yield None
            return
        except Exception as exc:  # noqa: BLE001 - whatever pydicom raises on a hostile file
            view.note = f"the original cannot be read as a DICOM image ({exc.__class__.__name__})"
            yield None
            return
        with parts:
            yield parts


def _describe(elem: DataElement) -> str:
    try:
        value = elem.value
        if elem.VR == "SQ":
            return f"sequence of {len(value)} item(s)"
        if isinstance(value, bytes | bytearray):
            return f"{len(value)} bytes"
        text = "\\".join(str(v) for v in value) if is_multi(value) else str(value)
    except Exception as exc:  # noqa: BLE001 - a value pydicom cannot convert
        return f"(cannot be decoded: {exc.__class__.__name__})"
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def _action(elem: DataElement, out: pydicom.Dataset) -> str:
    if elem.tag not in out:
        return "removed"
    try:
        before, after = elem.value, out[elem.tag].value
    except Exception:  # noqa: BLE001 - cannot compare what cannot be decoded
        return "replaced"
    if before == after or (_empty(before) and _empty(after)):
        return "kept"
    if _empty(after):
        return "emptied"
    return "changed" if elem.VR == "SQ" else "replaced"


def _empty(value: object) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _rows(ds: pydicom.Dataset, out: pydicom.Dataset | None,
          findings: list[deid_scan.Residue]) -> list[HeaderRow]:
    kinds: dict[str, list[str]] = {}
    for hit in findings:
        kinds.setdefault(hit.attribute, []).append(f"{hit.source} value ({hit.kind})")
    rows = []
    meta = getattr(ds, "file_meta", None)
    out_meta = getattr(out, "file_meta", None) or pydicom.Dataset()
    for src, dst in ((meta, out_meta), (ds, out)):
        for elem in src or ():
            if elem.tag >> 16 == 0x7FE0:
                continue  # pixel data: shown as the image
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            keyword = elem.keyword or ("private" if elem.tag.is_private else "unknown")
            rows.append(HeaderRow(tag, keyword, elem.VR, _describe(elem),
                                  "" if dst is None else _action(elem, dst),
                                  "; ".join(kinds.get(deid_scan.label(elem.tag), []))))
    return rows


def _first_frame(parts: DicomParts) -> np.ndarray:
    """The first frame's stored values, decoding one frame only."""
    if parts.pixels is None:  # deflated: the data set was read whole (and is small)
        arr = parts.dataset.pixel_array
        frames = int(parts.dataset.get("NumberOfFrames") or 1)
        return arr[0] if frames > 1 else arr
    if parts.pixels.length is None:
        # Compressed: the stream's QC sample decodes the first frame whole, after checking its
        # codestream against the header (a lying codestream is refused before decoding).
        return qc_sample(parts)[0]
    from pydicom.pixels import pixel_array

    parts.fh.seek(0)
    return pixel_array(parts.fh, index=0)


def _display(frame: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """8-bit pixels to look at: colour as it is; greyscale through the modality LUT and the
    window (the frame's, :func:`~bonebase.dicom.pixels.frame_view`: an enhanced CT's live in its
    functional groups; else the 0.5–99.5 percentiles), MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if frame.ndim == 3:  # colour (pydicom gives RGB)
        return np.clip(frame, 0, 255).astype(np.uint8) if frame.dtype != np.uint8 else frame
    values = np.asarray(frame, dtype=np.float64)
    try:
        values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
        windowed = "WindowCenter" in ds or "VOILUTSequence" in ds
        if windowed:
            values = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
    except Exception:  # noqa: BLE001 - a broken LUT or window: the percentiles below
        windowed = False
    lo, hi = (values.min(), values.max()) if windowed else np.percentile(values, (0.5, 99.5))
    out = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(values)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        out = 1.0 - out
    return np.round(out * 255).astype(np.uint8)


def _png(pixels: np.ndarray, size: int) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels))
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
