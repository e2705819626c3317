"""Scoring stored radiographs with a model, batched, and the image features drift is measured on.

``score_rows`` reads each radiograph from the object store once: its header gives the
acquisition features, its pixels (through the training pixel pipeline, ``radiograph_to_float``)
the intensity statistics and the model's input. The model runs on batches of ``batch`` images.
Nothing identifying is kept: features are vendor, photometric interpretation, sizes, spacings
and numbers computed from pixels.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pydicom

from bonebase.dicom.pixels import radiograph_to_float
from bonebase.errors import BonebaseError
from bonebase.storage import ObjectStore
from bonebase.vocab import DIAGNOSES, Behaviour, lookup_location, task_label

#: Features of each scored image, by group (what the drift check compares, in this order).
NUMERIC = {
    "clinical": ("age",),
    "acquisition": ("rows", "columns", "pixel_spacing", "bits_stored"),
    "image": ("mean", "std", "p05", "p50", "p95", "raw_mean"),
    "output": ("probability",),
}
CATEGORICAL = {
    "clinical": ("sex", "location", "diagnosis"),
    "acquisition": ("modality", "manufacturer", "photometric"),
}
# Statistics on every 4th pixel each way: the same figures to 3 decimals, 16 times less work.
_STRIDE = 4


@dataclass(frozen=True)
class Model:
    """What scoring needs of a model: its id, task, a Predictor (bonebase.model.inference) and
    the network scoring runs (:func:`inference_network` of the predictor's; None: its own)."""

    id: int
    task: str
    predictor: object
    network: object | None = None

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """P(class 1) of preprocessed inputs (n, 1, S, S), as ``predictor.forward`` gives it."""
        if self.network is None:
            return self.predictor.forward(batch)[:, 1]
        import torch

        with torch.inference_mode():
            logits = self.network(torch.as_tensor(np.asarray(batch, dtype=np.float32)))
            return torch.softmax(logits.float(), dim=1)[:, 1].numpy()


def inference_network(net):
    """A copy of ``net`` (in eval mode) with each BatchNorm folded into the convolution before
    it (torch.fx's conv-bn fusion): the same outputs to float rounding, a third less work on a
    CPU for a ResNet. ``net`` itself when fx cannot trace it."""
    import copy

    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(net).eval())
    except Exception:  # noqa: BLE001 - an architecture fx cannot trace runs as it is
        return net


def case_label(task: str, diagnosis_code: str | None, location_code: str | None,
               intermediate_as: str = "benign") -> int | None:
    """The case's class for ``task`` from its pathology diagnosis (None: outside the task)."""
    diagnosis = DIAGNOSES.get(diagnosis_code or "")
    label = task_label(task, diagnosis, lookup_location(location_code),
                       intermediate_as=Behaviour(intermediate_as))
    return label if label in (0, 1) else None  # the watch scores two-class tasks


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def image_features(ds: pydicom.Dataset, image: np.ndarray) -> dict:
    """Acquisition values of the header and intensity statistics of the [0, 1] image."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    sample = image[::_STRIDE, ::_STRIDE].astype(np.float64)
    p05, p50, p95 = np.percentile(sample, [5, 50, 95])
    bits = int(ds.get("BitsStored") or 16)
    raw = np.asarray(ds.pixel_array)[::_STRIDE, ::_STRIDE]
    return {
        "modality": _text(ds, "Modality"),
        "manufacturer": _text(ds, "Manufacturer"),
        "photometric": _text(ds, "PhotometricInterpretation"),
        "rows": int(ds.get("Rows") or 0),
        "columns": int(ds.get("Columns") or 0),
        "pixel_spacing": float(spacing[0]) if spacing else None,
        "bits_stored": bits,
        "mean": round(float(sample.mean()), 4),
        "std": round(float(sample.std()), 4),
        "p05": round(float(p05), 4),
        "p50": round(float(p50), 4),
        "p95": round(float(p95), 4),
        "raw_mean": round(float(raw.mean()) / float(2**bits - 1), 4),
    }


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def score_rows(
    store: ObjectStore,
    model: Model,
    todo: Iterable[dict],
    *,
    batch: int = 32,
    intermediate_as: str = "benign",
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Score radiographs (rows of :func:`bonebase.monitor.db.unscored`) with ``model``.

    Returns rows for :func:`bonebase.monitor.db.insert_scores`: label from the case's
    diagnosis, P(class 1), the decision at the locked threshold, features (clinical values,
    acquisition, intensity) and, for an image that cannot be read, the error instead of a score.
    """
    predictor = model.predictor
    out: list[dict] = []
    for chunk in _batches(list(todo), max(1, batch)):
        inputs, ready = [], []
        for row in chunk:
            scored = {
                "instance_id": row["instance_id"], "case_id": row["case_id"],
                "site_id": row["site_id"], "submission_id": row["submission_id"],
                "month": row["month"], "probability": None, "predicted": None, "error": None,
                "label": case_label(model.task, row["diagnosis_code"], row["location_code"],
                                    intermediate_as),
            }
            location = lookup_location(row["location_code"])
            clinical = {"age": row["age"], "sex": row["sex"] or "",
                        "location": location.code if location else (row["location_code"] or ""),
                        "diagnosis": row["diagnosis_code"] or ""}
            try:
                ds = pydicom.dcmread(io.BytesIO(store.get_bytes(row["object_key"])))
                image = radiograph_to_float(ds)
                scored["features"] = {**clinical, **image_features(ds, image)}
                inputs.append(predictor.preprocess(image))
                ready.append(scored)
            except (BonebaseError, ValueError, AttributeError, TypeError) as exc:
                # One unreadable image is one row with its reason, never a failed run.
                scored["features"] = clinical
                scored["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            out.append(scored)
        if inputs:
            probs = model.probabilities(np.stack(inputs))
            for scored, p in zip(ready, probs, strict=True):
                scored["probability"] = float(np.clip(p, 0.0, 1.0))
                scored["predicted"] = int(p >= predictor.threshold)
                scored["features"]["probability"] = round(float(p), 4)
        if progress:
            progress(len(out))
    return out


__all__ = ["CATEGORICAL", "NUMERIC", "Model", "case_label", "image_features", "inference_network",
           "score_rows"]
