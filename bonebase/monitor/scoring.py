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
import pydicom.errors

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
#: What reading a stored radiograph raises for an image that cannot be scored (a row's error).
READ_ERRORS = (BonebaseError, ValueError, AttributeError, TypeError,
               pydicom.errors.InvalidDicomError)
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


def inference_network(net, *, image_size: int | None = None):
    """A copy of ``net`` (in eval mode) made for scoring on a CPU, the same outputs to float
    rounding: each BatchNorm folded into the convolution before it (torch.fx's conv-bn fusion,
    a third less work for a ResNet); with ``image_size``, also traced to TorchScript, frozen and
    passed through ``torch.jit.optimize_for_inference`` (oneDNN convolutions with their ReLU
    fused: 1.3-2x faster again, benchmarks/watch_forward.py; any batch size and image side run
    on it). What fx or the tracer cannot handle runs as the step before gave it."""
    import copy

    import torch
    from torch.fx.experimental.optimization import fuse

    try:
        net = fuse(copy.deepcopy(net).eval())
    except Exception:  # noqa: BLE001 - an architecture fx cannot trace runs as it is
        pass
    if image_size is None:
        return net
    try:
        with torch.no_grad():
            example = torch.rand(2, 1, image_size, image_size,
                                 generator=torch.Generator().manual_seed(0))
            optimized = torch.jit.optimize_for_inference(
                torch.jit.trace(net, example, check_trace=False).eval())
            # A trace records one path through the code: a network whose output depends on
            # Python control flow would be silently wrong, so the copy must agree with it on
            # inputs unlike the trace's example (black, white) before it is used.
            probes = (example, torch.zeros_like(example), torch.ones_like(example))
            if all(torch.allclose(optimized(x), net(x), rtol=0, atol=1e-4) for x in probes):
                return optimized
    except Exception:  # noqa: BLE001 - a network the tracer refuses runs as fx left it
        pass
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


@dataclass
class Prepared:
    """One batch read and preprocessed: every row (in order) and the network's inputs of the
    rows whose image could be read (``ready``, in the inputs' order)."""

    rows: list[dict]
    inputs: list[np.ndarray]
    ready: list[dict]


def _start_row(model: Model, row: dict, intermediate_as: str) -> tuple[dict, dict]:
    """A row of :func:`bonebase.monitor.db.unscored` as a scored row not scored yet (label from
    the case's diagnosis), and its clinical features."""
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
    return scored, clinical


def _decide(scored: dict, p: float, threshold: float) -> None:
    scored["probability"] = float(np.clip(p, 0.0, 1.0))
    scored["predicted"] = int(p >= threshold)
    scored["features"]["probability"] = round(float(p), 4)


def read_image(data: bytes) -> tuple[dict, np.ndarray]:
    """A stored radiograph's bytes: its acquisition and intensity features and its [0, 1]
    image (one of READ_ERRORS when it cannot be read)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    image = radiograph_to_float(ds)
    return image_features(ds, image), image


def prepare_rows(store: ObjectStore, model: Model, chunk: Iterable[dict], *,
                 intermediate_as: str = "benign") -> Prepared:
    """Read, label and preprocess one batch of rows (no network): see :func:`score_rows`."""
    predictor = model.predictor
    prepared = Prepared([], [], [])
    for row in chunk:
        scored, clinical = _start_row(model, row, intermediate_as)
        try:
            features, image = read_image(store.get_bytes(row["object_key"]))
            scored["features"] = {**clinical, **features}
            prepared.inputs.append(predictor.preprocess(image))
            prepared.ready.append(scored)
        except READ_ERRORS as exc:
            # One unreadable image is one row with its reason, never a failed run.
            scored["features"] = clinical
            scored["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        prepared.rows.append(scored)
    return prepared


def finish_rows(model: Model, prepared: Prepared) -> list[dict]:
    """Run the network on a prepared batch: its rows with P(class 1) and the decision."""
    if prepared.inputs:
        probs = model.probabilities(np.stack(prepared.inputs))
        for scored, p in zip(prepared.ready, probs, strict=True):
            _decide(scored, p, model.predictor.threshold)
    return prepared.rows


def scored_early(model: Model, row: dict, early: dict, *, intermediate_as: str = "benign",
                 ) -> dict:
    """A row scored before it was stored (bonebase.monitor.early: the image's features and
    P(class 1), computed from the same bytes by content hash), as :func:`finish_rows` gives it."""
    scored, clinical = _start_row(model, row, intermediate_as)
    scored["features"] = {**clinical, **early["features"]}
    _decide(scored, early["probability"], model.predictor.threshold)
    return scored


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
    out: list[dict] = []
    for rows in score_batches(store, model, list(todo), batch=batch,
                              intermediate_as=intermediate_as, pipelined=False):
        out += rows
        if progress:
            progress(len(out))
    return out


def score_batches(store: ObjectStore, model: Model, todo: list[dict], *, batch: int = 32,
                  intermediate_as: str = "benign",
                  pipelined: bool = True) -> Iterator[list[dict]]:
    """:func:`score_rows` batch by batch. ``pipelined``: the next batch is read and
    preprocessed in a thread while the network runs on this one (its convolutions release the
    GIL): the wall time of a watch is about the larger of the two, not their sum. At most two
    batches are in memory (one without ``pipelined``). Meanwhile the network runs on one core
    fewer than torch's threads (at least one): the reader has it. On a loaded 2-core machine
    two threads for the network also spent twice the CPU seconds for the same work
    (benchmarks/ingest_watch.py)."""

    import torch

    chunks = list(_batches(todo, max(1, batch)))
    if not chunks:
        return
    if not pipelined:
        for chunk in chunks:
            yield finish_rows(model, prepare_rows(store, model, chunk,
                                                  intermediate_as=intermediate_as))
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads - 1))
    try:
        yield from _pipelined(store, model, chunks, intermediate_as)
    finally:
        torch.set_num_threads(threads)


def _pipelined(store: ObjectStore, model: Model, chunks: list[list[dict]],
               intermediate_as: str) -> Iterator[list[dict]]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch-read") as reader:
        def read(chunk: list[dict]):
            return reader.submit(prepare_rows, store, model, chunk,
                                 intermediate_as=intermediate_as)

        ahead = read(chunks[0])
        for following in [*chunks[1:], None]:
            prepared = ahead.result()
            ahead = read(following) if following is not None else None
            yield finish_rows(model, prepared)


__all__ = ["CATEGORICAL", "NUMERIC", "READ_ERRORS", "Model", "Prepared", "case_label",
           "finish_rows", "image_features", "inference_network", "prepare_rows", "read_image",
           "score_batches", "score_rows", "scored_early"]
