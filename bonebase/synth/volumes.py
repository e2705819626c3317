"""Small CT and MR volumes: axial slices through the limb at the lesion, one array per series.

A cross-section shows skin and subcutaneous fat, muscle, the cortical ring and marrow; the lesion
is an ellipsoid that replaces bone (lytic), adds density (sclerotic) or extends into the soft
tissue (mass). CT values are Hounsfield units; MR is T1-weighted or STIR with Rician-like noise.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from bonebase.synth.lesions import Lesion

# Tissue values: CT (HU), MR T1, MR STIR (arbitrary units).
_TISSUE = {
    "CT": dict(
        air=-1000,
        fat=-100,
        muscle=45,
        cortex=1400,
        marrow_young=40,
        marrow_old=-60,
        lytic=35,
        sclerotic=700,
        mass=50,
        calc=500,
    ),
    "T1": dict(
        air=0,
        fat=900,
        muscle=300,
        cortex=15,
        marrow_young=450,
        marrow_old=800,
        lytic=260,
        sclerotic=60,
        mass=280,
        calc=40,
    ),
    "STIR": dict(
        air=0,
        fat=90,
        muscle=160,
        cortex=10,
        marrow_young=200,
        marrow_old=80,
        lytic=950,
        sclerotic=150,
        mass=900,
        calc=30,
    ),
}


def render_volume(
    rng: np.random.Generator, *, kind: str, size: int, slices: int, lesion: Lesion, age: int
) -> tuple[np.ndarray, list[tuple[int, int, int, int] | None]]:
    """(volume as float32 [slices, size, size], per-slice lesion bbox or None).

    ``kind`` is CT, T1 or STIR.
    """
    tv = _TISSUE[kind]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + rng.normal(0, 2), size / 2 + rng.normal(0, 2)
    limb_a, limb_b = size * rng.uniform(0.36, 0.44), size * rng.uniform(0.30, 0.40)
    rb = size * rng.uniform(0.09, 0.13)  # bone radius
    by, bx = cy + rng.normal(0, 0.05 * size), cx + rng.normal(0, 0.05 * size)
    r_limb = np.hypot((yy - cy) / limb_a, (xx - cx) / limb_b)
    r_bone = np.hypot(yy - by, xx - bx)
    marrow = tv["marrow_young"] if age < 25 else tv["marrow_old"]
    base = np.full((size, size), tv["air"], dtype=np.float32)
    base[r_limb < 1.0] = tv["fat"]
    base[r_limb < 0.88] = tv["muscle"]
    base[r_bone < rb] = tv["cortex"]
    base[r_bone < rb * 0.72] = marrow
    # The lesion's centre and extent in the slice plane and along the slice stack.
    ang = lesion.theta
    ly = by + lesion.rho * rb * np.cos(ang)
    lx = bx + lesion.rho * rb * np.sin(ang)
    la = max(lesion.b, 0.3) * rb if lesion.exo is None else lesion.exo[1] * rb * 1.5
    lz = slices * rng.uniform(0.3, 0.45)  # half-length in slices
    if lesion.exo is not None:
        ly, lx = by + 1.3 * rb * np.cos(ang), bx + 1.3 * rb * np.sin(ang)
    vol = np.empty((slices, size, size), dtype=np.float32)
    boxes: list[tuple[int, int, int, int] | None] = []
    for z in range(slices):
        fz = 1.0 - ((z - (slices - 1) / 2) / lz) ** 2
        img = base.copy()
        if fz <= 0:
            boxes.append(None)
        else:
            rad = la * np.sqrt(fz)
            m = np.hypot(yy - ly, xx - lx) < rad
            if lesion.exo is not None:
                img[m] = tv["cortex"] * 0.7
            else:
                inside = r_bone < rb
                if lesion.depth >= lesion.scl * 0.8:
                    img[m & inside] = tv["lytic"]
                else:
                    img[m & inside] = tv["sclerotic"]
                if lesion.mass > 0:
                    mm = np.hypot(yy - ly, xx - lx) < rad + lesion.mass * rb * np.sqrt(fz)
                    m = m | (mm & ~inside & (r_limb < 0.95))
                    img[mm & ~inside & (r_limb < 0.95)] = tv["mass"]
                for _ in range(lesion.calc // 2):
                    py, px = ly + rng.normal(0, rad / 3), lx + rng.normal(0, rad / 3)
                    img[np.hypot(yy - py, xx - px) < 1.2] = tv["calc"]
            boxes.append(_bbox(m))
        vol[z] = img
    vol = gaussian_filter(vol, (0, 0.7, 0.7))
    if kind == "CT":
        vol += rng.normal(0, 12, vol.shape).astype(np.float32)
    else:
        sigma = 25.0
        vol = np.hypot(vol + rng.normal(0, sigma, vol.shape), rng.normal(0, sigma, vol.shape))
    return vol.astype(np.float32), boxes


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
