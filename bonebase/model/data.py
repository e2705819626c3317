"""The exported training view (data/labels.csv, data/split.csv, data/images/*.png) as datasets.

``preprocess_for_model`` is the one deterministic step from a [0, 1] radiograph to the network's
input; training, evaluation and serving all call it. Datasets cache its output (each PNG is
decoded once); training augments whole batches afterwards (:mod:`bonebase.model.augment`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai import transforms as mt
from monai.data import CacheDataset, DataLoader
from PIL import Image

from bonebase.dataset.labels import REQUIRED_COLUMNS
from bonebase.dataset.split import SPLITS
from bonebase.dicom.pixels import resize_keep_aspect
from bonebase.errors import InputError, NotFoundError
from bonebase.model.checkpoint import CLASS_NAMES


def preprocess_for_model(img_float01: np.ndarray, image_size: int) -> torch.Tensor:
    """A 2-D [0, 1] radiograph → float32 tensor (1, image_size, image_size) for the network.

    Longest side scaled to ``image_size``, padded with black (0) to a square; values stay in
    [0, 1] so that augmentation padding (also 0) looks like the film's own background.
    """
    img = np.asarray(img_float01, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"preprocess_for_model takes a 2-D image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError("preprocess_for_model got NaN/inf pixels; normalise the image first")
    out = resize_keep_aspect(np.clip(img, 0.0, 1.0), image_size)
    return torch.from_numpy(np.ascontiguousarray(out))[None]


def read_png(path: str | Path) -> np.ndarray:
    """An exported 8- or 16-bit grayscale PNG as a float32 [0, 1] array."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: exported image missing; re-run the export stage")
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a grayscale PNG, got shape {arr.shape}")
    top = 65535.0 if arr.dtype == np.uint16 or arr.max(initial=0) > 255 else 255.0
    return arr.astype(np.float32) / top


def png_side(path: str | Path) -> int:
    """Longest side of a PNG, read from its header (exported images are square)."""
    with Image.open(path) as im:
        return max(im.size)


def load_frame(
    data_dir: str | Path, *, task: str, split_csv: str | Path | None = None
) -> pd.DataFrame:
    """labels.csv joined to split.csv, restricted to the task's cases, with the class index in
    a column ``y`` (0/1 for binary tasks, 0..k-1 for ``normal_benign_malignant``).

    Rows whose task label is empty (cases outside the task, e.g. non-knee for os_vs_gct, normal
    images for benign_vs_malignant) are dropped; every kept row has a ``split`` in
    train/val/test/external.
    """
    data_dir = Path(data_dir)
    if task not in CLASS_NAMES:
        raise InputError(f"task={task!r} is not known; choose one of {', '.join(CLASS_NAMES)}")
    labels_path = data_dir / "labels.csv"
    split_path = Path(split_csv) if split_csv else data_dir / "split.csv"
    for p in (labels_path, split_path):
        if not p.is_file():
            raise NotFoundError(f"{p}: missing; run the export and split stages first")
    labels = pd.read_csv(labels_path, dtype={"patient_id": str, "case_id": str, "site": str})
    missing = [c for c in (*REQUIRED_COLUMNS, task) if c not in labels.columns]
    if missing:
        raise InputError(f"{labels_path}: missing columns {missing}; re-run the export stage")
    split = pd.read_csv(split_path, dtype={"patient_id": str, "site": str})
    if {"patient_id", "site", "split"} - set(split.columns):
        raise InputError(f"{split_path}: needs columns patient_id, site, split")
    bad = sorted(set(split["split"]) - set(SPLITS))
    if bad:
        raise InputError(f"{split_path}: unknown split values {bad}; expected {SPLITS}")
    frame = labels.merge(split, on=["patient_id", "site"], how="left", validate="many_to_one")
    unsplit = frame["split"].isna()
    if unsplit.any():
        row = frame[unsplit].iloc[0]
        raise InputError(
            f"{split_path}: patient {row['patient_id']} of site {row['site']} has no split; "
            "re-run the split stage after the export"
        )
    frame = frame[frame[task].notna() & (frame[task].astype(str) != "")].copy()
    frame["y"] = frame[task].astype(float).astype(int)
    k = len(CLASS_NAMES[task])
    bad = frame[~frame["y"].between(0, k - 1)]
    if len(bad):
        raise InputError(
            f"{labels_path}: image {bad['image'].iloc[0]} has {task}={bad[task].iloc[0]!r}; "
            f"the task's labels are 0..{k - 1} ({', '.join(CLASS_NAMES[task])}): export again"
        )
    if "lesion_outline" not in frame:  # exports made before outlines were exported
        frame["lesion_outline"] = ""
    # object first: a column with no outline at all is read as float64 (all NaN)
    frame["lesion_outline"] = frame["lesion_outline"].astype(object).fillna("")
    return frame.reset_index(drop=True)


def _items(frame: pd.DataFrame, data_dir: Path) -> list[dict]:
    return [
        {"image": str(data_dir / rel), "label": int(y), "row": i}
        for i, (rel, y) in enumerate(zip(frame["image"], frame["y"], strict=True))
    ]


def load_for_model(path: str | Path, image_size: int) -> torch.Tensor:
    """An exported PNG read and preprocessed exactly as the network expects it."""
    return preprocess_for_model(read_png(path), image_size)


def _load(image_size: int) -> mt.Transform:
    # Lambdad is deterministic, so CacheDataset caches its output: each PNG is decoded once.
    # A partial (not a lambda) keeps the dataset picklable for spawned DataLoader workers.
    return mt.Lambdad(keys="image", func=partial(load_for_model, image_size=image_size))


def make_dataset(
    frame: pd.DataFrame,
    data_dir: str | Path,
    *,
    image_size: int,
    cache_workers: int = 2,
) -> CacheDataset:
    """A cached MONAI dataset of ``{"image": (1, S, S), "label": int, "row": int}`` items,
    exactly :func:`preprocess_for_model` of each PNG (augmentation is applied per batch)."""
    chain = [_load(image_size), mt.EnsureTyped(keys="image", data_type="tensor", track_meta=False)]
    return CacheDataset(
        _items(frame, Path(data_dir)),
        transform=mt.Compose(chain),
        cache_rate=1.0,
        num_workers=cache_workers,
        progress=False,
    )


def make_loader(
    dataset: CacheDataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    cuda: bool,
    sampler: torch.utils.data.Sampler | None = None,
) -> DataLoader:
    """A DataLoader that keeps the accelerator fed: persistent workers, pinned memory on CUDA."""
    # MONAI's DataLoader seeds each worker's random transforms from torch's seed (reproducible).
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=cuda,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # A sampler (DistributedSampler) may hand this loader only a share of the dataset.
        drop_last=shuffle and len(sampler if sampler is not None else dataset) > batch_size,
    )
