"""Training augmentation for radiographs, applied to a whole batch at once on its device.

Per-sample MONAI dictionary transforms cost 10-80 ms each per 256 px image on a CPU (metadata
handling around small tensor ops), which made data loading, not the network, the bottleneck of
training; one ``affine_grid``/``grid_sample`` per batch does the geometric part for all images
and runs on the GPU when there is one. The random draws come from a ``torch.Generator`` on the
CPU, so a seed gives the same augmentation on any device.

What is drawn, per image: a small rotation (±10° with probability 0.5), a left-right flip
(left and right limbs are equally likely; up-down flips would be unnatural), a shift of up to
1/16 of the side (the former pad-and-random-crop), and intensity jitter: gamma 0.75-1.35,
scale ±10 % and offset ±0.05, each with probability 0.3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _coin(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def batch_augment(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    max_rotate: float = math.pi / 18,
    p_rotate: float = 0.5,
    p_flip: float = 0.5,
    max_shift: float = 1 / 16,
    gamma: tuple[float, float] = (0.75, 1.35),
    scale: float = 0.1,
    offset: float = 0.05,
    p_intensity: float = 0.3,
) -> torch.Tensor:
    """Randomly augmented copy of ``x`` (n, C, H, W), channel 0 a radiograph in [0, 1]; padding
    is black (0) like the film's background and the padding of ``preprocess_for_model``.

    Channels past the first (lesion masks) get the same geometry and no intensity change."""
    n = x.shape[0]
    angle = _uniform(n, -max_rotate, max_rotate, gen) * _coin(n, p_rotate, gen)
    flip = torch.where(_coin(n, p_flip, gen), -1.0, 1.0)
    # affine_grid works in [-1, 1] coordinates: a shift of s of the side is 2 s there.
    tx, ty = (_uniform(n, -2 * max_shift, 2 * max_shift, gen) for _ in range(2))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    g = _uniform(n, *gamma, gen)
    g = torch.where(_coin(n, p_intensity, gen), g, torch.ones(n))
    s = 1 + _uniform(n, -scale, scale, gen) * _coin(n, p_intensity, gen)
    o = _uniform(n, -offset, offset, gen) * _coin(n, p_intensity, gen)
    dev, dt = x.device, x.dtype
    grid = F.affine_grid(theta.to(dev, dt), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    view = (n, 1, 1, 1)
    img = out[:, :1].clamp(0, 1) ** g.to(dev, dt).view(view)
    img = img * s.to(dev, dt).view(view) + o.to(dev, dt).view(view)
    return torch.cat([img, out[:, 1:]], 1)


__all__ = ["batch_augment"]
