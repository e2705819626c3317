"""The diagnosis model: MONAI networks, datasets over the exported view, training, evaluation.

- ``networks``: classifiers by name (resnet18/34, slim resnet10/18, densenet121,
  efficientnet-b0), grayscale input.
- ``data``: ``preprocess_for_model`` (shared with serving), datasets and loaders;
  ``augment``: batched training augmentation.
- ``train``: the training loop (``lesion``: optional lesion-box loss); ``checkpoint``:
  save/load with provenance.
- ``evaluate`` + ``report``: metrics, baseline, calibration, Grad-CAM, t-SNE, HTML report.
- ``synthdata``: the exported view straight from ``bonebase synth`` output (tests, benchmarks).
"""

from bonebase.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from bonebase.model.data import load_frame, preprocess_for_model, read_png
from bonebase.model.networks import ARCHS, build_network

__all__ = [
    "ARCHS",
    "Checkpoint",
    "build_network",
    "load_checkpoint",
    "load_frame",
    "preprocess_for_model",
    "read_png",
    "save_checkpoint",
]
