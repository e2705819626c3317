"""Inference for serving and registry comparisons: a checkpoint as a ``Predictor``.

Input is what the pixel pipeline produces (a 2-D [0, 1] radiograph). The Predictor repeats the
training input path exactly: ``resize_keep_aspect`` to the export size the model was trained on,
then the model engineer's ``preprocess_for_model``. Nothing here copies that code.

``decode_upload`` turns an uploaded file (DICOM, PNG or JPEG) into such an image, refusing
non-images, corrupt files and DICOM that is not a radiograph.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bonebase.config import Settings
from bonebase.dicom.pixels import radiograph_to_float, resize_keep_aspect
from bonebase.dicom.read import DicomReadError, read_full
from bonebase.errors import InputError
from bonebase.model.checkpoint import Checkpoint, load_checkpoint
from bonebase.model.data import preprocess_for_model
from bonebase.model.gradcam import heat_maps, make_cam
from bonebase.model.upload_limits import (
    UploadError,
    check_dicom,
    check_frames,
    open_image,
)

RADIOGRAPH_MODALITIES = ("CR", "DX")
_DICM_MAGIC_OFFSET = 128
# The platform's default; entry points pass the configured BONEBASE_MAX_PIXELS.
MAX_PIXELS = Settings.model_fields["max_pixels"].default


@dataclass(frozen=True)
class Decoded:
    """An uploaded image as a [0, 1] radiograph plus what its header said."""

    image: np.ndarray
    kind: str  # "dicom" or "png"/"jpeg"
    modality: str | None = None


def _is_dicom(data: bytes) -> bool:
    return data[_DICM_MAGIC_OFFSET : _DICM_MAGIC_OFFSET + 4] == b"DICM"


def decode_upload(
    data: bytes,
    *,
    name: str = "upload",
    modalities: tuple[str, ...] = RADIOGRAPH_MODALITIES,
    max_pixels: int = MAX_PIXELS,
) -> Decoded:
    """An uploaded DICOM, PNG or JPEG as a 2-D float32 [0, 1] radiograph (bright = dense).

    The pixel count the header claims is checked against ``max_pixels`` before anything is
    decoded (``UploadError`` code ``too_large``), see :mod:`bonebase.model.upload_limits`.

    DICOM goes through ``radiograph_to_float`` (modality LUT → VOI LUT → MONOCHROME1); a DICOM
    whose Modality is not in ``modalities`` is refused (the model reads X-rays only). PNG/JPEG
    are taken as already display-ready grayscale (colour is converted to luminance).
    """
    if not data:
        raise UploadError(f"{name}: the file is empty; send a DICOM, PNG or JPEG", code="empty")
    if _is_dicom(data):
        check_dicom(data, name=name, max_pixels=max_pixels)
        try:
            ds = read_full(data)
        except DicomReadError as exc:
            raise UploadError(str(exc).replace("<bytes>", name, 1), code=exc.reason) from exc
        check_frames(ds, name=name)
        modality = str(ds.get("Modality", "") or "")
        if modality not in modalities:
            raise UploadError(
                f"{name}: DICOM Modality is {modality or 'missing'!r}; the model reads "
                f"radiographs only ({', '.join(modalities)}): send an X-ray",
                code="not_a_radiograph",
            )
        try:
            image = radiograph_to_float(ds)
        except InputError as exc:
            raise UploadError(f"{name}: {exc}", code="unsupported_image") from exc
        except Exception as exc:  # pydicom's pixel decoders raise assorted types
            raise UploadError(
                f"{name}: pixel data cannot be decoded ({exc}); export the image again",
                code="corrupt_file",
            ) from exc
        return Decoded(image=image, kind="dicom", modality=modality)
    try:
        with open_image(data, name=name, max_pixels=max_pixels) as im:
            fmt = (im.format or "").lower()
            if fmt not in ("png", "jpeg"):
                raise UploadError(
                    f"{name}: {fmt or 'unknown'} images are not accepted; send DICOM, PNG or JPEG",
                    code="not_an_image",
                )
            im.load()
            arr = _grayscale(im)
    except UploadError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:  # truncated/corrupt image data
        raise UploadError(
            f"{name}: the image file is corrupt ({exc}); send it again", code="corrupt_file"
        ) from exc
    return Decoded(image=arr, kind=fmt)


def _grayscale(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr / top, 0.0, 1.0).astype(np.float32)
    if im.mode != "L":
        im = im.convert("L")
    return np.asarray(im, dtype=np.float32) / 255.0


class Predictor:
    """A checkpoint ready to score radiographs: preprocessing, network and locked threshold."""

    def __init__(self, ckpt: Checkpoint, *, device: str | torch.device = "cpu") -> None:
        self.checkpoint = ckpt
        self.device = torch.device(device)
        self.net = ckpt.network().to(self.device)
        self._cam = None  # built on first Grad-CAM request (a deep copy of the network)
        # GradCAM hooks store activations on the module: one heat-map computation at a time.
        self._cam_lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """Load ``path`` (a ``models/model.pt`` written by the train stage)."""
        return cls(load_checkpoint(path), device=device)

    @property
    def classes(self) -> list[str]:
        return self.checkpoint.classes

    @property
    def threshold(self) -> float | None:
        """The locked threshold on P(class 1); None for a task of more than two classes."""
        return self.checkpoint.threshold

    def preprocess(self, image_float01: np.ndarray) -> np.ndarray:
        """One [0, 1] radiograph → the network input (1, S, S) float32, as in training."""
        img = np.asarray(image_float01, dtype=np.float32)
        if img.ndim != 2:
            raise InputError(f"Predictor takes 2-D grayscale images, got shape {img.shape}")
        if self.checkpoint.export_size:
            # Training read PNGs exported at this side; resizing twice (export, then model
            # size) is part of the input distribution the model learned.
            img = resize_keep_aspect(np.clip(img, 0.0, 1.0), self.checkpoint.export_size)
        return preprocess_for_model(img, self.checkpoint.image_size).numpy()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (n, k) for preprocessed inputs (n, 1, S, S)."""
        x = torch.as_tensor(np.asarray(batch, dtype=np.float32), device=self.device)
        if x.ndim != 4:
            raise InputError(f"Predictor.forward takes (n, 1, S, S), got {tuple(x.shape)}")
        with torch.inference_mode():
            return torch.softmax(self.net(x).float(), dim=1).cpu().numpy()

    def decide(self, probs: np.ndarray) -> list[dict]:
        """Per row of (n, k) probabilities: probabilities by class name and the predicted class:
        at the locked threshold on P(class 1) for two classes, the most probable class for more
        (``threshold`` None)."""
        names = self.classes
        out = []
        for p in np.asarray(probs, dtype=float):
            if self.threshold is None:
                index = int(np.argmax(p))
            else:
                index = int(p[1] >= self.threshold)
            out.append(
                {
                    "probabilities": {name: float(v) for name, v in zip(names, p, strict=True)},
                    "predicted_class": names[index],
                    "predicted_index": index,
                    "threshold": None if self.threshold is None else float(self.threshold),
                }
            )
        return out

    def gradcam(self, inputs: np.ndarray, class_idx: np.ndarray | list[int]) -> np.ndarray:
        """Grad-CAM heat maps (n, S, S) in [0, 1] for preprocessed inputs, each for its class."""
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        maps = np.zeros((len(x), *x.shape[-2:]), np.float32)
        idx = np.asarray(class_idx, dtype=int)
        with self._cam_lock:
            if self._cam is None:
                self._cam = make_cam(self.net, self.checkpoint.arch)
            for k in np.unique(idx):  # MONAI's GradCAM takes one class index per call
                rows = np.flatnonzero(idx == k)
                maps[rows] = heat_maps(self._cam, x[rows], int(k))
        return maps

    def predict(self, images_float01: list[np.ndarray], *, gradcam: bool = False) -> list[dict]:
        """Probabilities, predicted class at the locked threshold and, with ``gradcam``, a heat
        map ``(S, S)`` float array for the predicted class, one dict per image."""
        if not images_float01:
            return []
        inputs = np.stack([self.preprocess(img) for img in images_float01])
        results = self.decide(self.forward(inputs))
        if gradcam:
            heats = self.gradcam(inputs, [r["predicted_index"] for r in results])
            for r, h in zip(results, heats, strict=True):
                r["gradcam"] = h
        return results

    def metadata(self) -> dict:
        """What the checkpoint says about itself (no weights)."""
        c = self.checkpoint
        return {
            "task": c.task,
            "arch": c.arch,
            "classes": c.classes,
            "threshold": None if c.threshold is None else float(c.threshold),
            "image_size": c.image_size,
            "export_size": c.export_size,
            "dataset_version": c.dataset_version,
            "code_revision": c.code_revision,
            "created": c.created,
        }


def heat_png(heat: np.ndarray) -> bytes:
    """A [0, 1] heat map as an 8-bit grayscale PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.rint(np.clip(heat, 0.0, 1.0) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


__all__ = ["Decoded", "Predictor", "UploadError", "decode_upload", "heat_png"]
