"""Radiograph phantoms: a long bone end at a joint, projected, with a lesion and detector effects.

The bone is a tube whose outer radius flares towards the joint (metaphysis, epiphysis) and whose
cortex thickens along the shaft; its projection uses the chord lengths through cortex and
medulla, which gives the bright cortical margins of a real radiograph. Trabecular texture is
filtered noise stretched along the bone axis. Soft tissue is a wider ellipse. Young patients
show an open physis. The detector adds blur, a heel-effect gradient and quantum noise.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from bonebase.synth.lesions import Lesion, paint, texture

# Shaft radius as a fraction of image width, and the flare of the joint end.
BONES: dict[str, tuple[float, float]] = {
    "femur": (0.105, 1.7),
    "tibia": (0.095, 1.55),
    "humerus": (0.085, 1.8),
    "fibula": (0.055, 1.45),
    "radius": (0.065, 1.6),
}
VIEW_ANGLE = {"AP": 0.0, "LAT": np.pi / 2, "OBL": np.pi / 4}
MU_CORTEX, MU_MEDULLA, MU_SOFT = 0.55, 0.16, 0.085


def _profile(yp: np.ndarray, *, H: int, Rs: float, flare: float) -> tuple[np.ndarray, np.ndarray]:
    """Outer radius and cortical thickness per row, ``yp`` px from the joint line into the bone."""
    meta = 1.0 / (1.0 + np.exp((yp - 0.16 * H) / (0.035 * H)))  # 1 at the joint end, 0 in shaft
    cap = 0.35 * Rs * flare  # rounded articular end
    dome = np.sqrt(np.clip(1.0 - ((cap - yp) / cap) ** 2, 0.0, 1.0))
    R = Rs * (1.0 + (flare - 1.0) * meta) * np.where(yp >= cap, 1.0, dome) * (yp > 0)
    shaft = 1.0 / (1.0 + np.exp(-(yp - 0.3 * H) / (0.06 * H)))
    return R, R * (0.07 + 0.18 * shaft)


def _tube(d: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chord lengths through the cortex and the medulla of a tube at lateral offset ``d``."""
    outer = 2.0 * np.sqrt(np.clip(R**2 - d**2, 0.0, None))
    inner = 2.0 * np.sqrt(np.clip((R - t) ** 2 - d**2, 0.0, None))
    return outer - inner, inner


def render_radiograph(
    rng: np.random.Generator,
    *,
    shape: tuple[int, int],
    bone: str,
    segment: str,
    age: int,
    lesion: Lesion,
    view: str,
    noise: float,
    blur: float,
    exposure: float,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """One projection: (log-attenuation image as float32, lesion bbox x0, y0, x1, y1 or None).

    The bbox is inclusive pixel coordinates of the lesion's footprint (including a soft-tissue
    mass, periosteal reaction or exostosis) in the returned image.
    """
    H, W = shape
    lateral = view == "LAT"
    frac, flare = BONES[bone]
    Rs = frac * W * (0.92 if lateral else 1.0) * rng.uniform(0.9, 1.1)
    flare = flare * (0.85 if lateral else 1.0) * rng.uniform(0.92, 1.08)
    if segment == "diaphysis":
        sign = 1.0
        joint_y = -0.2 * H
    else:
        # Proximal end: the joint is above and the bone runs down; distal end: the reverse.
        sign = 1.0 if segment == "proximal" else -1.0
        joint_y = (0.22 if sign > 0 else 0.78) * H + rng.normal(0, 0.02 * H)
    rows = np.arange(H, dtype=np.float32)
    cx_row = W / 2 + rng.normal(0, 0.03 * W) + rng.normal(0, 0.04) * (rows - H / 2)
    yp_row = (rows - joint_y) * sign
    R_row, t_row = _profile(yp_row, H=H, Rs=Rs, flare=flare)
    R2_row, t2_row = _profile(-yp_row - 0.025 * H, H=H, Rs=Rs * 0.95, flare=flare * 0.95)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d = xx - cx_row[:, None]
    R, t = R_row[:, None], t_row[:, None]
    cort, med = _tube(d, R, t)
    cort2, med2 = _tube(d, R2_row[:, None], t2_row[:, None])
    trab = texture(rng, (H, W), (max(H / 120, 1.0), max(W / 300, 0.6)))
    ends = 1.0 / (1.0 + np.exp((yp_row[:, None] - 0.25 * H) / (0.05 * H)))
    bone_att = (MU_CORTEX * cort + MU_MEDULLA * med * (0.5 + trab * (0.6 + 0.6 * ends))) / Rs
    bone_att += (MU_CORTEX * cort2 + MU_MEDULLA * med2 * (0.5 + trab)) / Rs
    if age < 17:
        # Open physis: a wavy lucent band across the epiphysis-metaphysis junction.
        plate = 0.07 * H + 2.0 * np.sin(xx / 9.0)
        bone_att *= 1.0 - 0.5 * np.exp(-(((yp_row[:, None] - plate) / 1.4) ** 2)) * (med > 0)
    limb = Rs * rng.uniform(2.2, 2.8) * (1.0 + 0.15 * np.exp(-((yp_row[:, None] / (0.2 * H)) ** 2)))
    soft = MU_SOFT * 2.0 * np.sqrt(np.clip(limb**2 - d**2, 0.0, None)) / Rs
    geo = dict(
        H=H,
        Rs=Rs,
        sign=sign,
        joint_y=joint_y,
        cx=float(np.mean(cx_row)),
        inside=(cort + med) > 0,
        dist_out=np.abs(d) - R,
        radius=lambda y: float(np.interp(y, rows, R_row)),
    )
    mult, add, foot = paint(
        lesion,
        yy=yy,
        xx=xx - (cx_row[:, None] - geo["cx"]),
        geo=geo,
        view_angle=VIEW_ANGLE[view],
        rng=rng,
    )
    att = soft + bone_att * np.clip(mult, 0.0, 1.0) + add
    return _detect(rng, att, noise=noise, blur=blur, exposure=exposure, yy=yy / H), _bbox(foot)


def _detect(
    rng: np.random.Generator,
    att: np.ndarray,
    *,
    noise: float,
    blur: float,
    exposure: float,
    yy: np.ndarray,
) -> np.ndarray:
    """Detector: blur, heel effect, quantum noise; returns the log signal (bone bright)."""
    att = gaussian_filter(att, blur) if blur > 0 else att
    att = att + rng.uniform(-0.06, 0.06) * (yy - 0.5)  # anode heel effect
    intensity = np.exp(-1.2 * att)
    sigma = noise / np.sqrt(exposure * rng.uniform(0.8, 1.25))
    intensity = intensity + sigma * np.sqrt(intensity) * rng.standard_normal(
        att.shape, dtype=np.float32
    )
    return (-np.log(np.clip(intensity, 1e-3, None)) / 1.2).astype(np.float32)


def _bbox(foot: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(foot.any(axis=1)), np.flatnonzero(foot.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
