"""Heat maps by method and layer, and how well they point at the lesion.

Methods (``evaluate.heatmap_method`` in params.yaml): ``gradcam`` (MONAI ``GradCAM``),
``gradcam++`` (MONAI ``GradCAMpp``, batched), ``hirescam`` (Draelos & Carin 2020: the gradient times the
activation cell by cell, summed over channels, instead of Grad-CAM's spatially averaged
gradient; faithful to what a CNN's last layers compute; MONAI's CAM machinery with that one
line changed) and ``occlusion`` (MONAI ``OcclusionSensitivity``: the drop in the class's
probability when a patch is blurred away; model-agnostic, ~250 forward passes per image).
``layer`` picks the feature map the CAM methods read: the default is the last convolutional
stage (``layer4``: 4 x 4 cells at 128 px), ``layer3`` has 8 x 8.

Scores against the lesion (masks from labels.csv: ``lesion_box``, or a polygon in
``lesion_outline`` where the export has one):

- pointing game: the map's peak lies inside the lesion;
- weighting game: the share of the map's energy (sum of its values) inside the lesion;
- IoU of the map thresholded at ``threshold`` x its maximum with the lesion mask.

A map read from an n x n feature map and upsampled peaks near a cell centre: ``ceiling`` gives,
for each lesion, whether any cell centre lies inside it, i.e. the best pointing game that layer
can reach at all.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch
import torch.nn.functional as F
from monai.visualize import GradCAM, GradCAMpp, OcclusionSensitivity
from PIL import Image, ImageDraw
from torch import nn

from bonebase.errors import ConfigError, InputError
from bonebase.model.gradcam import parse_box, unit_range
from bonebase.model.networks import gradcam_layer

METHODS = ("gradcam", "gradcam++", "hirescam", "occlusion")


class HiResCAM(GradCAM):
    """HiResCAM: element-wise gradient x activation, summed over channels (then ReLU)."""

    def compute_map(self, x, class_idx=None, retain_graph=False, layer_idx=-1, **kwargs):
        _, acti, grad = self.nn_module(x, class_idx=class_idx, retain_graph=retain_graph, **kwargs)
        return F.relu((grad[layer_idx] * acti[layer_idx]).sum(1, keepdim=True))


class GradCAMPlusPlus(GradCAMpp):
    """MONAI's Grad-CAM++ with the class score broadcast per image: MONAI 1.6 multiplies the
    (batch,) score into (batch, C, H, W) gradients along the last axis, which fails (or mixes
    images up) for a batch of more than one."""

    def compute_map(self, x, class_idx=None, retain_graph=False, layer_idx=-1, **kwargs):
        _, acti, grad = self.nn_module(x, class_idx=class_idx, retain_graph=retain_graph, **kwargs)
        acti, grad = acti[layer_idx], grad[layer_idx]
        b, c = grad.shape[:2]
        ones = [1] * (grad.ndim - 2)
        alpha_nr = grad.pow(2)
        alpha_dr = alpha_nr.mul(2) + acti.mul(grad.pow(3)).view(b, c, -1).sum(-1).view(b, c, *ones)
        alpha = alpha_nr.div(torch.where(alpha_dr != 0.0, alpha_dr, torch.ones_like(alpha_dr)) + 1e-7)
        score = self.nn_module.score.view(b, *[1] * (grad.ndim - 1))
        weights = (alpha * F.relu(score.exp() * grad)).view(b, c, -1).sum(-1).view(b, c, *ones)
        return F.relu((weights * acti).sum(1, keepdim=True))


class Explainer:
    """Heat maps (n, H, W) in [0, 1] of one method on a private copy of a network."""

    def __init__(self, net: nn.Module, arch: str, *, method: str = "gradcam",
                 layer: str | None = None, occlusion_patch: int = 16) -> None:
        if method not in METHODS:
            raise ConfigError(
                f"evaluate.heatmap_method={method!r}; choose one of {', '.join(METHODS)}"
            )
        self.method, self.net = method, copy.deepcopy(net).float().eval()
        self.layer = layer or gradcam_layer(arch)
        if method == "occlusion":
            self.layer = "input"
            self._occ = OcclusionSensitivity(
                self.net, mask_size=occlusion_patch, n_batch=64, verbose=False, overlap=0.5
            )
            return
        try:
            self.net.get_submodule(self.layer)
        except AttributeError:
            raise ConfigError(
                f"evaluate.heatmap_layer={self.layer!r} is not a layer of {arch}; for ResNets "
                "use layer1..layer4"
            ) from None
        cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM}[method]
        # MONAI's default post-processing maps (min, max) to (1, 0): the flipped map would peak
        # at the least class-relevant place; unit_range keeps the peak a peak.
        self._cam = cls(nn_module=self.net, target_layers=self.layer, postprocessing=unit_range)

    def maps(self, images: torch.Tensor, class_idx: int, *, batch_size: int = 16) -> np.ndarray:
        """Heat maps for ``images`` (n, 1, H, W) and class ``class_idx``."""
        if images.ndim != 4:
            raise InputError(f"heat maps take (n, 1, H, W) images, got {tuple(images.shape)}")
        device = next(self.net.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device).float()
            out.append(self._occlusion(x, class_idx) if self.method == "occlusion"
                       else self._cam(x, class_idx=class_idx).detach().float().cpu().numpy()[:, 0])
        if not out:
            return np.zeros((0, *images.shape[-2:]), np.float32)
        return np.nan_to_num(np.concatenate(out), nan=0.0)

    def _occlusion(self, x: torch.Tensor, class_idx: int) -> np.ndarray:
        with torch.no_grad():
            base = torch.softmax(self.net(x), 1)[:, class_idx]
        maps = []
        for i in range(len(x)):  # OcclusionSensitivity takes one image at a time
            occ, _ = self._occ(x[i : i + 1])
            drop = base[i] - occ[0, class_idx]  # probability lost when that patch is hidden
            maps.append(drop.clamp(min=0)[None, None])
        return unit_range(torch.cat(maps)).float().cpu().numpy()[:, 0]

    def cells(self, image_size: int) -> int:
        """Side of the feature map this method reads (image side for occlusion)."""
        if self.method == "occlusion":
            return image_size
        feats: list[torch.Tensor] = []
        hook = self.net.get_submodule(self.layer).register_forward_hook(
            lambda _m, _a, out: feats.append(out)
        )
        with torch.no_grad():
            device = next(self.net.parameters()).device
            self.net(torch.zeros(1, 1, image_size, image_size, device=device))
        hook.remove()
        return int(feats[0].shape[-1])


def box_mask(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """A box (x0 y0 x1 y1, pixel edges) → (size, size) bool mask of the pixel centres inside."""
    c = np.arange(size) + 0.5
    x0, y0, x1, y1 = box
    return ((c[None, :] >= x0) & (c[None, :] <= x1)) & ((c[:, None] >= y0) & (c[:, None] <= y1))


def outline_mask(text: object, size: int, *, scale: float = 1.0) -> np.ndarray | None:
    """labels.csv ``lesion_outline`` (JSON: a list of polygons, each a list of [x, y], or of
    shapes with ``points``) → (size, size) bool mask; None when empty."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return None
    try:
        shapes = json.loads(str(text))
    except json.JSONDecodeError:
        raise InputError("lesion_outline is not JSON; re-run the export stage") from None
    if isinstance(shapes, dict):
        shapes = [shapes]
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        points = shape.get("points", []) if isinstance(shape, dict) else shape
        pts = [(float(x) * scale, float(y) * scale) for x, y in points]
        if len(pts) == 2:  # a rectangle given by two corners
            (ax, ay), (bx, by) = pts
            draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], fill=1)
        elif len(pts) >= 3:
            draw.polygon(pts, fill=1)
    mask = np.asarray(canvas, dtype=bool)
    return mask if mask.any() else None


def lesion_mask(row, *, from_size: int, to_size: int) -> tuple[np.ndarray | None, str]:
    """The lesion of one labels.csv row on the model input: (mask, "outline" | "box" | "")."""
    scale = to_size / from_size
    outline = outline_mask(row.get("lesion_outline"), to_size, scale=scale)
    if outline is not None:
        return outline, "outline"
    box = parse_box(row.get("lesion_box"))
    if box is None:
        return None, ""
    return box_mask(tuple(v * scale for v in box), to_size), "box"


def image_scores(heat: np.ndarray, mask: np.ndarray, *, threshold: float = 0.5) -> dict:
    """Pointing hit, weighting-game share and IoU of the thresholded map for one image."""
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    total = float(heat.sum())
    top = heat >= threshold * float(heat.max()) if heat.max() > 0 else np.zeros_like(mask)
    union = np.logical_or(top, mask).sum()
    return {
        "hit": float(mask[peak]),
        "energy": float(heat[mask].sum() / total) if total > 0 else 0.0,
        "iou": float(np.logical_and(top, mask).sum() / union) if union else 0.0,
        "area": float(mask.mean()),
    }


def ceiling(mask: np.ndarray, cells: int) -> bool:
    """Whether a cell centre of a ``cells`` x ``cells`` map lies inside ``mask``."""
    size = mask.shape[0]
    centres = ((np.arange(cells) + 0.5) * size / cells).astype(int).clip(0, size - 1)
    return bool(mask[np.ix_(centres, centres)].any())


def mean_ci(values: np.ndarray, *, n: int, seed: int) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap 95% CI (NaN when empty)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (max(n, 1), values.size))].mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def summarise(scores, *, bootstrap: int, seed: int) -> dict:
    """Per-image scores (DataFrame: hit, energy, iou, ceiling, label, site, mask_kind) →
    {"all": {...}, "class0": ..., "site_X": ..., "outline": ...} with means and 95% CIs."""
    groups = {"all": scores}
    for c, g in scores.groupby("label", sort=True):
        groups[f"class{c}"] = g
    for s, g in scores.groupby("site", sort=True):
        groups[f"site_{s}"] = g
    for k, g in scores.groupby("mask_kind", sort=True):
        groups[k] = g
    out = {}
    for name, g in groups.items():
        row: dict = {"n": int(len(g))}
        for key, label in (("hit", "pointing_game"), ("energy", "weighting_game"), ("iou", "iou")):
            m, lo, hi = mean_ci(g[key].to_numpy(), n=bootstrap, seed=seed)
            row.update({label: m, f"{label}_lo": lo, f"{label}_hi": hi})
        row["pointing_ceiling"] = float(g["ceiling"].mean()) if len(g) else float("nan")
        row["lesion_area"] = float(g["area"].mean()) if len(g) else float("nan")
        out[name] = row
    return out


__all__ = [
    "METHODS",
    "Explainer",
    "GradCAMPlusPlus",
    "HiResCAM",
    "box_mask",
    "ceiling",
    "image_scores",
    "lesion_mask",
    "mean_ci",
    "outline_mask",
    "summarise",
]
