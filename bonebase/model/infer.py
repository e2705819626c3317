"""Batch inference over exported images: per-image logits and penultimate features, and the
case-level score (mean logits over a case's radiographs, so views count equally)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from bonebase.model.data import make_dataset, make_loader


def predict(
    net: nn.Module,
    frame: pd.DataFrame,
    data_dir: str | Path,
    *,
    image_size: int,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    features_of: nn.Module | None = None,
    dataset=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (n, classes) for the rows of ``frame`` in order, and, when ``features_of`` (a
    layer of ``net``) is given, that layer's input for each row (the penultimate features)."""
    device = torch.device(device)
    ds = dataset or make_dataset(frame, data_dir, image_size=image_size)
    loader = make_loader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        cuda=device.type == "cuda",
    )
    return run_logits(net, loader, device=device, features_of=features_of)


def run_logits(
    net: nn.Module,
    loader,
    *,
    device: torch.device | str = "cpu",
    features_of: nn.Module | None = None,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (and optionally ``features_of``'s inputs) for every batch of ``loader``, in order."""
    device = torch.device(device)
    feats: list[torch.Tensor] = []
    handle = None
    if features_of is not None:
        handle = features_of.register_forward_hook(
            lambda _m, args, _out: feats.append(args[0].detach().flatten(1).float().cpu())
        )
    logits = []
    net.eval().to(device)
    cuda = device.type == "cuda"
    try:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda and amp):
            for batch in loader:
                x = batch["image"].to(device, non_blocking=True)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits.append(net(x).float().cpu())
    finally:
        if handle is not None:
            handle.remove()
    out = torch.cat(logits).numpy() if logits else np.zeros((0, 2), np.float32)
    return out, (torch.cat(feats).numpy() if feats else None)


def case_logits(frame: pd.DataFrame, logits: np.ndarray) -> pd.DataFrame:
    """One row per (site, case_id): the case's labels and clinical fields plus mean logits
    ``logit0`` … ``logit{k-1}`` (one per class) and ``n_images``."""
    per_image = frame[["site", "case_id"]].copy()
    for k in range(logits.shape[1]):
        per_image[f"logit{k}"] = logits[:, k]
    keys = ["site", "case_id"]
    agg = per_image.groupby(keys, sort=True).agg(
        n_images=("logit0", "size"),
        **{f"logit{k}": (f"logit{k}", "mean") for k in range(logits.shape[1])},
    )
    info_cols = [c for c in ("patient_id", "split", "y", "age", "sex", "region") if c in frame]
    info = frame.drop_duplicates(keys).set_index(keys)[info_cols]
    return agg.join(info).reset_index()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) from (n, k) logits."""
    z = np.asarray(logits, dtype=float)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def softmax_positive(logits: np.ndarray) -> np.ndarray:
    """P(class 1) from (n, 2) logits."""
    z = np.asarray(logits, dtype=float)
    return 1.0 / (1.0 + np.exp(-(z[:, 1] - z[:, 0])))
