"""Model checkpoints: weights plus everything needed to reproduce and serve them.

A checkpoint is one ``torch.save`` file holding plain data only (loadable with
``weights_only=True``): the state dict, architecture, preprocessing parameters, training
parameters, dataset version, code revision, task, class names and decision threshold.

Binary tasks end in two logits and decide at a locked threshold on P(class 1); a task of more
classes (``normal_benign_malignant``) ends in one logit per class (softmax) and decides by the
most probable class: its threshold is None.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bonebase.errors import InputError, NotFoundError
from bonebase.model.networks import build_network

FORMAT = 1
PREPROCESS_FN = "bonebase.model.data.preprocess_for_model"
# Class names per task, in label order (labels.csv holds the index). The keys are the tasks a
# model can be trained for (bonebase.vocab.TASKS; a test checks they agree).
CLASS_NAMES = {
    "benign_vs_malignant": ["benign", "malignant"],
    "os_vs_gct": ["gct", "osteosarcoma"],
    "tumour_vs_normal": ["normal", "tumour"],
    "normal_benign_malignant": ["normal", "benign", "malignant"],
}


def task_classes(task: str) -> list[str]:
    """The class names of ``task`` in label order; an unknown task is refused."""
    if task not in CLASS_NAMES:
        raise InputError(f"task={task!r} is not known; choose one of {', '.join(CLASS_NAMES)}")
    return list(CLASS_NAMES[task])


@dataclass
class Checkpoint:
    """A trained model and its provenance; ``threshold`` applies to P(class 1) (None for a
    task of more than two classes, which takes the most probable class)."""

    arch: str
    task: str
    image_size: int
    state_dict: dict[str, torch.Tensor]
    threshold: float | None
    train_params: dict = field(default_factory=dict)
    dataset_version: str | None = None
    code_revision: str | None = None
    history: list[dict] = field(default_factory=list)
    export_size: int | None = None  # side of the exported PNGs the model was trained on
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    @property
    def classes(self) -> list[str]:
        return CLASS_NAMES.get(self.task, ["negative", "positive"])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def network(self) -> nn.Module:
        """The network with these weights, in eval mode on the CPU."""
        net = build_network(self.arch, num_classes=self.num_classes)
        net.load_state_dict(self.state_dict)
        return net.eval()

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "arch": self.arch,
            "task": self.task,
            "classes": self.classes,
            "num_classes": self.num_classes,
            "in_channels": 1,
            # Serving reproduces training input with radiograph_to_float → resize_keep_aspect
            # (export_size) → preprocess_for_model(image_size).
            "preprocessing": {
                "function": PREPROCESS_FN,
                "image_size": self.image_size,
                "export_size": self.export_size,
            },
            "threshold": None if self.threshold is None else float(self.threshold),
            "train_params": self.train_params,
            "dataset_version": self.dataset_version,
            "code_revision": self.code_revision,
            "history": self.history,
            "created": self.created,
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
        }


def code_revision(path: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``path`` (this package by default),
    with ``-dirty`` when tracked files changed; None outside a git checkout."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write ``ckpt`` to ``path`` (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt.to_dict(), tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors only, no pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no checkpoint; run the train stage first")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a foreign or truncated file
        raise InputError(f"{path}: not a bonebase checkpoint ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InputError(f"{path}: not a bonebase checkpoint of format {FORMAT}; retrain")
    return Checkpoint(
        arch=raw["arch"],
        task=raw["task"],
        image_size=int(raw["preprocessing"]["image_size"]),
        state_dict=raw["state_dict"],
        threshold=None if raw.get("threshold") is None else float(raw["threshold"]),
        train_params=raw.get("train_params", {}),
        dataset_version=raw.get("dataset_version"),
        code_revision=raw.get("code_revision"),
        history=raw.get("history", []),
        export_size=raw["preprocessing"].get("export_size"),
        created=raw.get("created", ""),
    )
