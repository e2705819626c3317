"""Lesion-box supervision during training: an auxiliary loss that asks the last convolutional
stage (the layer Grad-CAM reads) to mark where the lesion is.

With a few hundred training cases, the class label alone let the network fit the bone shape and
background (pointing game 0.006 in the first session); the lesion boxes in labels.csv say where
the evidence lies. A 1×1 convolution on that stage's feature map predicts, per cell, the share of
the cell covered by the lesion box (binary cross-entropy). The head exists only while training:
the checkpoint holds the classifier alone, so evaluation and serving are unchanged. Images
without a box add nothing to this loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from bonebase.model.gradcam import parse_box


def box_tensor(boxes: pd.Series, *, export_size: int, image_size: int) -> torch.Tensor:
    """labels.csv ``lesion_box`` strings → (n, 4) x0, y0, x1, y1 in model-input pixels; NaN
    rows where a box is unknown."""
    f = image_size / export_size
    rows = [parse_box(b) for b in boxes]
    arr = np.array([[v * f for v in b] if b else [np.nan] * 4 for b in rows], dtype=np.float32)
    return torch.from_numpy(arr.reshape(-1, 4))


def box_masks(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 4) boxes → (n, 1, size, size) masks, 1 inside a box (all 0 for a NaN box)."""
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    x, y = centres.view(1, 1, size), centres.view(1, size, 1)
    b = boxes.view(-1, 4, 1, 1)
    inside = (x >= b[:, 0]) & (x <= b[:, 2]) & (y >= b[:, 1]) & (y <= b[:, 3])
    return inside.float().unsqueeze(1)


class LesionHead(nn.Module):
    """Training-only head on ``layer``'s output: a 1×1 conv giving one lesion logit per cell."""

    def __init__(self, net: nn.Module, layer: str, image_size: int) -> None:
        super().__init__()
        self._features: torch.Tensor | None = None
        self._hook = net.get_submodule(layer).register_forward_hook(self._keep)
        was_training = net.training
        with torch.no_grad():  # one dry run tells the stage's channel count
            net.eval()(torch.zeros(1, 1, image_size, image_size, device=_device(net)))
        net.train(was_training)
        assert self._features is not None
        self.conv = nn.Conv2d(self._features.shape[1], 1, kernel_size=1).to(_device(net))
        self._features = None

    def _keep(self, _module, _args, out: torch.Tensor) -> None:
        self._features = out

    def loss(self, masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """BCE between the last forward pass's cell logits and the masks' cover per cell."""
        if self._features is None:
            raise RuntimeError("LesionHead.loss needs a forward pass of the network first")
        logits = self.conv(self._features.float())
        target = F.adaptive_avg_pool2d(masks, logits.shape[-2:])
        per_image = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        per_image = per_image.flatten(1).mean(1)
        self._features = None
        weights = valid.float()
        return (per_image * weights).sum() / weights.sum().clamp(min=1.0)

    def remove(self) -> None:
        """Detach the hook from the network (call when training ends)."""
        self._hook.remove()


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


__all__ = ["LesionHead", "box_masks", "box_tensor"]
