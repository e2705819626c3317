"""Grad-CAM heat maps (MONAI ``GradCAM``) and the pointing game against known lesion boxes.

The pointing game counts a hit when the heat map's peak lies inside the lesion box (no
tolerance margin): the fraction of hits says whether the model looks at the tumour.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from monai.visualize import GradCAM
from torch import nn

from bonebase.errors import InputError
from bonebase.model.networks import gradcam_layer


def unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of (n, 1, H, W) to [0, 1], largest activation → 1 (a flat map → 0)."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = (hi - lo).clamp(min=1e-12).view(-1, 1, 1, 1)
    return ((maps - lo.view(-1, 1, 1, 1)) / span).where(span > 1e-12, torch.zeros_like(maps))


def make_cam(net: nn.Module, arch: str) -> GradCAM:
    """A GradCAM on a private copy of ``net`` (its hooks stay off the caller's model)."""
    # MONAI's default post-processing maps (min, max) to (1, 0), which flips the heat map
    # (its own docstring says so): the peak would be the least class-relevant place.
    return GradCAM(
        nn_module=copy.deepcopy(net).float().eval(),
        target_layers=gradcam_layer(arch),
        postprocessing=unit_range,
    )


def heat_maps(
    cam: GradCAM, images: torch.Tensor, class_idx: int, *, batch_size: int = 16
) -> np.ndarray:
    """Heat maps (n, H, W) in [0, 1] for ``images`` (n, 1, H, W) and class ``class_idx``."""
    if images.ndim != 4:
        raise InputError(f"heat_maps takes (n, 1, H, W) images, got {tuple(images.shape)}")
    device = next(cam.nn_module.model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float()
        maps = cam(x, class_idx=class_idx)
        out.append(maps.detach().float().cpu().numpy()[:, 0])
    if not out:
        return np.zeros((0, *images.shape[-2:]), np.float32)
    return np.nan_to_num(np.concatenate(out), nan=0.0)


def parse_box(text: object) -> tuple[float, float, float, float] | None:
    """ "x0 y0 x1 y1" (labels.csv ``lesion_box``) → floats, or None when empty."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return None
    parts = str(text).split()
    if len(parts) != 4:
        raise InputError(f"lesion_box {text!r}: expected 'x0 y0 x1 y1'; re-run the export stage")
    x0, y0, x1, y1 = (float(p) for p in parts)
    return x0, y0, x1, y1


def peak_in_box(heat: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Whether the heat map's maximum (pixel centre) lies inside ``box`` (same coordinates)."""
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x, y = col + 0.5, row + 0.5
    x0, y0, x1, y1 = box
    return bool(x0 <= x <= x1 and y0 <= y <= y1)


def scale_box(
    box: tuple[float, float, float, float], *, from_size: int, to_size: int
) -> tuple[float, float, float, float]:
    """A box on the square exported image (side ``from_size``) → the model input's pixels."""
    f = to_size / from_size
    return tuple(v * f for v in box)  # type: ignore[return-value]


def pointing_game(heats: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> float:
    """Fraction of heat maps whose peak lies in the matching box (NaN when there are none)."""
    if len(heats) != len(boxes):
        raise InputError(f"pointing_game: {len(heats)} heat maps but {len(boxes)} boxes")
    if not boxes:
        return float("nan")
    return float(np.mean([peak_in_box(h, b) for h, b in zip(heats, boxes, strict=True)]))
