"""Lesion models: how each diagnosis looks on a radiograph, as parameters and as painted maps.

Appearances follow the classic radiographic descriptions (Lodwick margins, periosteal reaction
types): giant cell tumour eccentric, epiphyseal, lytic, well-defined, soap-bubble; osteosarcoma
metaphyseal, ill-defined, sclerotic or lytic, sunburst or Codman triangle, soft-tissue mass;
osteochondroma an exostosis continuous with the cortex; simple bone cyst central, lucent,
well-defined; chondrosarcoma and enchondroma with ring-and-arc calcification; Ewing sarcoma
diaphyseal, permeative, onion-skin; aneurysmal bone cyst eccentric and expansile; non-ossifying
fibroma cortical, elongated, sclerotic-rimmed. Every feature is drawn from a distribution that
overlaps between diagnoses, and a share of lesions is subtle, so the task is learnable but hard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class Lesion:
    """View-independent lesion parameters (lengths relative to image height H or shaft radius)."""

    y: float  # centre: distance from the joint line / H
    rho: float  # eccentricity: 0 central, 1 at the cortex
    theta: float  # angular position around the bone axis (radians)
    a: float  # axial semi-axis / H
    b: float  # transverse semi-axis / shaft radius
    edge: float  # margin width: small = well-defined, large = ill-defined
    depth: float  # lysis: fraction of bone removed in the centre
    scl: float  # matrix sclerosis amplitude
    rim: float  # sclerotic margin / neocortex shell amplitude
    septa: int  # number of "bubbles" (soap-bubble septation)
    perm: float  # permeative / moth-eaten destruction 0..1
    calc: int  # chondroid calcifications (rings and arcs)
    mass: float  # soft-tissue mass extent beyond the cortex / shaft radius (0: none)
    sunburst: float
    codman: float
    onion: float
    exo: tuple[float, float, float] | None  # exostosis (length / H, width / radius, angle)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _p(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def sample_lesion(rng: np.random.Generator, diagnosis: str, segment: str) -> Lesion:
    """Draw a lesion for a diagnosis; ``segment`` (proximal/distal/diaphysis) moves it shaftwards."""
    vis = _u(rng, 0.15, 0.35) if _p(rng, 0.12) else _u(rng, 0.4, 1.0)  # a share is subtle
    ill = _p(rng, 0.5)
    k = dict(
        y=0.2,
        rho=0.0,
        theta=_u(rng, 0, 2 * np.pi),
        a=0.08,
        b=0.8,
        edge=0.05,
        depth=0.5,
        scl=0.0,
        rim=0.0,
        septa=0,
        perm=0.0,
        calc=0,
        mass=0.0,
        sunburst=0.0,
        codman=0.0,
        onion=0.0,
        exo=None,
    )
    if diagnosis == "giant_cell_tumour":
        ill = _p(rng, 0.2)
        k.update(
            y=_u(rng, 0.07, 0.14),
            rho=_u(rng, 0.35, 0.8),
            a=_u(rng, 0.06, 0.17),
            b=_u(rng, 0.6, 1.2),
            edge=_u(rng, 0.12, 0.3) if ill else _u(rng, 0.02, 0.07),
            depth=_u(rng, 0.45, 0.9),
            rim=_u(rng, 0.0, 0.25) if _p(rng, 0.5) else 0.0,
            septa=int(rng.integers(2, 6)) if _p(rng, 0.7) else 0,
            mass=_u(rng, 0.2, 0.7) if _p(rng, 0.2) else 0.0,
        )
    elif diagnosis == "osteosarcoma":
        kind = rng.choice(["sclerotic", "lytic", "mixed"], p=[0.45, 0.25, 0.30])
        ill = _p(rng, 0.8)
        k.update(
            y=_u(rng, 0.13, 0.3),
            rho=_u(rng, 0.0, 0.5),
            a=_u(rng, 0.05, 0.16),
            b=_u(rng, 0.7, 1.2),
            edge=_u(rng, 0.15, 0.35) if ill else _u(rng, 0.04, 0.1),
            depth=_u(rng, 0.1, 0.3) if kind == "sclerotic" else _u(rng, 0.35, 0.8),
            scl=_u(rng, 0.3, 0.8) if kind != "lytic" else 0.0,
            perm=_u(rng, 0.3, 0.8) if ill else 0.0,
            mass=_u(rng, 0.3, 1.0) if _p(rng, 0.55) else 0.0,
            sunburst=_u(rng, 0.2, 0.6) if _p(rng, 0.5) else 0.0,
            codman=_u(rng, 0.3, 0.7) if _p(rng, 0.5) else 0.0,
        )
    elif diagnosis == "osteochondroma":
        k.update(
            y=_u(rng, 0.15, 0.3),
            a=0.0,
            b=0.0,
            depth=0.0,
            exo=(_u(rng, 0.1, 0.25), _u(rng, 0.3, 0.55), _u(rng, 0.5, 1.1)),
            calc=int(rng.integers(0, 4)),
        )
    elif diagnosis == "simple_bone_cyst":
        k.update(
            y=_u(rng, 0.15, 0.3),
            rho=_u(rng, 0.0, 0.2),
            a=_u(rng, 0.07, 0.18),
            b=_u(rng, 0.75, 1.05),
            edge=_u(rng, 0.02, 0.06),
            depth=_u(rng, 0.35, 0.7),
            rim=_u(rng, 0.05, 0.2),
            septa=int(rng.integers(0, 3)) if _p(rng, 0.3) else 0,
        )
    elif diagnosis in ("chondrosarcoma", "enchondroma"):
        cs = diagnosis == "chondrosarcoma"
        ill = _p(rng, 0.55 if cs else 0.2)
        k.update(
            y=_u(rng, 0.18, 0.45),
            rho=_u(rng, 0.0, 0.35),
            a=_u(rng, 0.06, 0.17) if cs else _u(rng, 0.04, 0.13),
            b=_u(rng, 0.6, 1.0) if cs else _u(rng, 0.4, 0.8),
            edge=_u(rng, 0.1, 0.25) if ill else _u(rng, 0.03, 0.08),
            depth=_u(rng, 0.25, 0.6) if cs else _u(rng, 0.15, 0.45),
            rim=_u(rng, 0.0, 0.2) if _p(rng, 0.3) else 0.0,
            calc=int(rng.integers(3, 14)) if _p(rng, 0.85) else 0,
            perm=_u(rng, 0.1, 0.4) if ill else 0.0,
            mass=_u(rng, 0.3, 0.8) if cs and _p(rng, 0.25) else 0.0,
        )
    elif diagnosis == "ewing_sarcoma":
        ill = _p(rng, 0.9)
        k.update(
            y=_u(rng, 0.25, 0.5),
            rho=_u(rng, 0.0, 0.3),
            a=_u(rng, 0.07, 0.18),
            b=_u(rng, 0.8, 1.1),
            edge=_u(rng, 0.15, 0.35) if ill else _u(rng, 0.05, 0.1),
            depth=_u(rng, 0.25, 0.6),
            perm=_u(rng, 0.4, 0.9),
            scl=_u(rng, 0.1, 0.4) if _p(rng, 0.2) else 0.0,
            mass=_u(rng, 0.3, 1.0) if _p(rng, 0.6) else 0.0,
            onion=_u(rng, 0.2, 0.6) if _p(rng, 0.6) else 0.0,
            codman=_u(rng, 0.2, 0.5) if _p(rng, 0.2) else 0.0,
        )
    elif diagnosis == "aneurysmal_bone_cyst":
        ill = _p(rng, 0.2)
        k.update(
            y=_u(rng, 0.12, 0.28),
            rho=_u(rng, 0.5, 0.95),
            a=_u(rng, 0.06, 0.16),
            b=_u(rng, 0.6, 1.35),
            edge=_u(rng, 0.1, 0.25) if ill else _u(rng, 0.02, 0.06),
            depth=_u(rng, 0.55, 0.9),
            rim=_u(rng, 0.1, 0.35) if _p(rng, 0.8) else 0.0,
            septa=int(rng.integers(2, 6)) if _p(rng, 0.7) else 0,
        )
    elif diagnosis == "non_ossifying_fibroma":
        k.update(
            y=_u(rng, 0.15, 0.35),
            rho=_u(rng, 0.75, 1.0),
            a=_u(rng, 0.05, 0.14),
            b=_u(rng, 0.3, 0.55),
            edge=_u(rng, 0.02, 0.06),
            depth=_u(rng, 0.35, 0.7),
            rim=_u(rng, 0.15, 0.4) if _p(rng, 0.8) else 0.0,
            septa=int(rng.integers(2, 4)) if _p(rng, 0.5) else 0,
        )
    else:
        raise ValueError(f"no lesion model for diagnosis {diagnosis!r}")
    if segment == "diaphysis":
        k["y"] = k["y"] + 0.2  # the joint lies outside the field: keep the lesion in the shaft
    for name in ("depth", "scl", "rim", "sunburst", "codman", "onion"):
        k[name] = float(k[name]) * vis
    return Lesion(**k)


def _ring(dist: np.ndarray, radius: float, width: float) -> np.ndarray:
    return np.exp(-(((dist - radius) / width) ** 2))


def texture(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]
) -> np.ndarray:
    """Smooth noise scaled to about [0, 1]."""
    tex = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    tex /= float(tex.std()) + 1e-6
    return np.clip(0.5 + 0.2 * tex, 0.0, 1.0)


def paint(
    les: Lesion,
    *,
    yy: np.ndarray,
    xx: np.ndarray,
    geo: dict,
    view_angle: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint a lesion into bone and soft-tissue maps for one view.

    ``geo`` holds the bone geometry of this view: ``H``, ``Rs`` (shaft radius px), ``joint_y``,
    ``cx`` and ``radius(y)`` (outer radius per row), ``sign`` (+1 when the bone runs down from
    the joint), ``inside`` (bone mask) and ``dist_out`` (px beyond the bone surface).
    Returns full-size (bone multiplier, added attenuation, lesion footprint mask).
    """
    H, Rs, sign = geo["H"], geo["Rs"], geo["sign"]
    mult_full = np.ones_like(yy)
    add_full = np.zeros_like(yy)
    foot_full = np.zeros(yy.shape, dtype=bool)
    yl = geo["joint_y"] + sign * les.y * H
    # Work only on the rows the lesion can reach: the maps are 1 / 0 elsewhere (speed).
    reach = 1.6 * max(les.a * H, 3.0) + 8 if les.exo is None else 1.5 * (les.exo[0] * H + Rs)
    r0, r1 = int(np.clip(yl - reach, 0, H)), int(np.clip(yl + reach + 1, 0, H))
    if r1 - r0 < 2:
        return mult_full, add_full, foot_full
    win = slice(r0, r1)
    yy, xx = yy[win], xx[win]
    mult, add, foot = mult_full[win], add_full[win], foot_full[win]  # views: writes go through
    ang = les.theta + view_angle
    side = 1.0 if np.sin(ang) >= 0 else -1.0
    rad_l = geo["radius"](yl)
    xl = geo["cx"] + les.rho * rad_l * np.sin(ang)
    inside_bone, dist_out = geo["inside"][win], geo["dist_out"][win]
    if les.exo is not None:
        length, width, alpha = les.exo
        L, w0 = length * H, width * Rs
        base_y = yl
        base_x = geo["cx"] + side * geo["radius"](base_y) * 0.85
        dy, dx = sign * np.cos(alpha), side * np.sin(alpha)  # points away from the joint
        u = (yy - base_y) * dy + (xx - base_x) * dx
        v = -(yy - base_y) * dx + (xx - base_x) * dy
        w = w0 * (1 + 0.8 * np.clip(u / L, 0, 1) ** 2)
        cap = np.where(u > L, np.sqrt(np.clip(1 - ((u - L) / (0.6 * w)) ** 2, 0, 1)), 1.0)
        w = w * cap * (u > -w0)
        outer = 2 * np.sqrt(np.clip(w**2 - v**2, 0, None))
        inner = 2 * np.sqrt(np.clip((0.78 * w) ** 2 - v**2, 0, None))
        stalk = ~inside_bone  # only where it leaves the parent bone: the cortices merge
        add += np.where(stalk, 0.55 * (outer - inner) / Rs + 0.28 * inner / Rs, 0.0)
        foot |= (outer > 0) & (u > 0)
        for _ in range(les.calc):  # stippled cartilage cap
            cy = base_y + dy * L * 1.1 + rng.normal(0, 0.3 * w0)
            cxp = base_x + dx * L * 1.1 + rng.normal(0, 0.3 * w0)
            add += 0.25 * _ring(np.hypot(yy - cy, xx - cxp), 0.0, 1.5)
        return mult_full, add_full, foot_full
    a, b = max(les.a * H, 3.0), max(les.b * Rs, 3.0)
    r = np.sqrt(((yy - yl) / a) ** 2 + ((xx - xl) / b) ** 2)
    m = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / max(les.edge, 1e-3), -50, 50)))
    fine, coarse = texture(rng, yy.shape, 1.2), texture(rng, yy.shape, 2.5)
    if les.perm > 0:
        # Moth-eaten destruction: holes where fine noise is high, densest at the centre.
        holes = np.clip((fine - (0.75 - 0.45 * les.perm)) * 4, 0, 1)
        m = m * (0.35 + 0.65 * holes) + les.perm * 0.3 * m * (r < 1.4) * holes
    mult -= les.depth * np.clip(m, 0, 1)
    if les.scl > 0:
        add += les.scl * 0.45 * np.clip(m, 0, 1) * np.clip((coarse - 0.35) * 2.5, 0, 1)
    if les.rim > 0:
        add += les.rim * 0.5 * _ring(r, 1.0, 0.06) * ((r < 1.3) & (inside_bone | (les.b > 0.8)))
    for _ in range(les.septa):
        sy = yl + rng.uniform(-0.6, 0.6) * a
        sx = xl + rng.uniform(-0.6, 0.6) * b
        sr = rng.uniform(0.3, 0.6) * min(a, b)
        add += 0.18 * les.depth * _ring(np.hypot(yy - sy, xx - sx), sr, 1.2) * (r < 1)
    for _ in range(les.calc):
        cy = yl + rng.uniform(-0.7, 0.7) * a
        cxp = xl + rng.uniform(-0.7, 0.7) * b
        add += 0.16 * _ring(np.hypot(yy - cy, xx - cxp), rng.uniform(0.8, 3.0), 0.9) * (r < 1.1)
    foot |= r < 1.0 + 0.5 * min(les.edge, 0.2)
    if les.mass > 0:
        mb = rad_l + les.mass * Rs
        ma = a * 1.15
        rm = np.sqrt(((yy - yl) / ma) ** 2 + ((xx - geo["cx"]) / mb) ** 2)
        on_side = (xx - geo["cx"]) * side > 0
        mass = np.clip(1 - rm**2, 0, None) * on_side * ~inside_bone
        add += 0.35 * np.sqrt(mass) * les.mass
        foot |= mass > 0.05
        if les.sunburst > 0:
            phi = np.arctan2(yy - yl, (xx - geo["cx"]) * side)
            spic = np.cos(phi * rng.uniform(18, 30)) ** 8
            add += les.sunburst * 0.4 * spic * mass * (coarse > 0.3)
    near = (dist_out > 0) & ((xx - geo["cx"]) * side > 0)
    if les.codman > 0:
        # Periosteum lifted at the tumour's margins: a thin line rising away from the cortex.
        for edge_y in (yl - a * 1.1, yl + a * 1.1):
            u = (edge_y - yy) * np.sign(edge_y - yl)  # grows towards the tumour centre
            line = _ring(dist_out, 0.5 * np.clip(u, 0, None), 1.2) * (u > 0) * (u < 0.35 * a)
            add += les.codman * 0.5 * line * near
        foot |= near & (np.abs(yy - yl) < a * 1.2) & (dist_out < 0.2 * a)
    if les.onion > 0:
        band = (dist_out < 0.12 * Rs + 6) & (np.abs(yy - yl) < a)
        add += les.onion * 0.35 * (0.5 + 0.5 * np.cos(2 * np.pi * dist_out / 3.0)) * band * near
        foot |= band & near
    return mult_full, add_full, foot_full
