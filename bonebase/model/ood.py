"""Inputs unlike the training data: a feature-space out-of-distribution score and header checks.

The score is the Mahalanobis distance of an image's penultimate features in the top principal
components of the validation features, plus the share of the features those components do not
explain (a chest film or a photograph moves the features along directions no radiograph of a long
bone uses). The threshold is a quantile of the validation images' own scores (``quantile`` 0.99:
about 1% of in-distribution images are flagged by construction). The evaluation reports the false
alarms on the external site (images from a hospital the model never saw) and the detection rate on
images that are not bone radiographs at all (:func:`unrelated_images`).

The detector is small (mean, ``k`` components and variances: ``to_dict``) and travels in the
model's metrics (``metrics["ood"]["detector"]``) to the served model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from bonebase.errors import InputError

RADIOGRAPH_MODALITIES = ("CR", "DX")
# DICOM BodyPartExamined values of the limbs the model was trained on (long bones at a joint).
LIMB_PARTS = frozenset({
    "EXTREMITY", "LEG", "LOWER LIMB", "UPPER LIMB", "ARM", "KNEE", "FEMUR", "TIBIA", "FIBULA",
    "HUMERUS", "SHOULDER", "ELBOW", "FOREARM", "RADIUS", "ULNA", "WRIST", "HIP", "ANKLE",
    "LOWER LEG", "UPPER ARM", "THIGH",
})  # fmt: skip


@dataclass
class FeatureOOD:
    """PCA-Mahalanobis score with a threshold calibrated on validation features."""

    mean: np.ndarray
    components: np.ndarray  # (k, d), rows orthonormal
    variances: np.ndarray  # (k,)
    residual_scale: float
    threshold: float
    quantile: float

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores (n,) for features (n, d): larger = less like the validation images."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.mean.shape[0]:
            raise InputError(
                f"OOD score: features of shape {f.shape}, detector fitted on {self.mean.shape[0]}"
            )
        centred = f - self.mean
        proj = centred @ self.components.T
        resid = np.linalg.norm(centred - proj @ self.components, axis=1)
        maha = np.sqrt(((proj**2) / self.variances).sum(1) / len(self.variances))
        return maha + resid / self.residual_scale

    def flags(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def to_dict(self) -> dict:
        """JSON-ready: the arrays as one base64 float32 string (numbers would flood
        ``dvc metrics show``, which lists every number of metrics.json)."""
        k, d = self.components.shape
        arrays = np.concatenate([self.mean, self.variances, self.components.ravel()])
        return {"k": int(k), "d": int(d), "residual_scale": float(self.residual_scale),
                "threshold": float(self.threshold), "quantile": float(self.quantile),
                "float32_base64": base64.b64encode(arrays.astype("<f4").tobytes()).decode()}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureOOD:
        try:
            k, dim = int(d["k"]), int(d["d"])
            arr = np.frombuffer(base64.b64decode(d["float32_base64"]), dtype="<f4")
            arr = arr.astype(np.float64)
            if arr.size != dim + k + k * dim:
                raise ValueError(f"{arr.size} values for k={k}, d={dim}")
            return cls(arr[:dim], arr[dim + k :].reshape(k, dim), arr[dim : dim + k],
                       float(d["residual_scale"]), float(d["threshold"]), float(d["quantile"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"OOD detector in the model's metrics is malformed ({exc}); "
                             "re-run the evaluate stage") from None


def fit_ood(features: np.ndarray, *, quantile: float = 0.99, k: int = 16) -> FeatureOOD:
    """Fit on in-distribution (validation) features (n, d); threshold at their ``quantile``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 5:
        raise InputError(f"OOD detector needs at least 5 validation images, got {len(f)}")
    mean = f.mean(0)
    centred = f - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = max(1, min(k, len(f) - 1, f.shape[1]))
    variances = np.maximum((s[:k] ** 2) / max(len(f) - 1, 1), 1e-8)
    comps = vt[:k]
    resid = np.linalg.norm(centred - (centred @ comps.T) @ comps, axis=1)
    det = FeatureOOD(mean, comps, variances, max(float(np.median(resid)), 1e-6), 0.0, quantile)
    det.threshold = float(np.quantile(det.score(f), quantile))
    return det


def header_reasons(modality: str | None, body_part: str | None) -> list[str]:
    """Why a DICOM header says the image is outside the training data (empty: nothing)."""
    reasons = []
    if modality and modality.upper() not in RADIOGRAPH_MODALITIES:
        reasons.append(f"Modality {modality}: the model was trained on radiographs (CR/DX)")
    if body_part and body_part.strip().upper() not in LIMB_PARTS:
        reasons.append(f"BodyPartExamined {body_part}: the model was trained on limb bones")
    return reasons


def unrelated_images(n: int, size: int, *, seed: int = 0) -> np.ndarray:
    """(n, size, size) float32 [0, 1] images that are not bone radiographs: noise, smooth
    blobs (a photograph's out-of-focus background), a chest-like film (two dark lung fields in
    a bright frame with ribs), a checkerboard, text-like stripes, a flat grey page."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            img = rng.random((size, size))
        elif kind == 1:
            img = gaussian_filter(rng.random((size, size)), size / 10)
        elif kind == 2:
            lungs = sum(np.exp(-(((xx - cx) / 0.16) ** 2 + ((yy - 0.5) / 0.3) ** 2) * 2)
                        for cx in (0.3, 0.7))
            ribs = 0.15 * (np.sin(yy * 40 + rng.uniform(0, 6)) > 0.6)
            img = 0.85 - 0.6 * lungs + ribs * lungs + 0.03 * rng.standard_normal((size, size))
        elif kind == 3:
            step = int(rng.integers(4, 17))
            img = ((np.arange(size)[:, None] // step + np.arange(size)[None] // step) % 2) * 1.0
        elif kind == 4:
            img = 0.9 - 0.8 * ((np.sin(yy * size * 0.9) > 0.3) & (rng.random((size, 1)) > 0.4))
        else:
            img = np.full((size, size), rng.uniform(0.3, 0.7))
        img = np.asarray(img, dtype=np.float64)
        lo, hi = img.min(), img.max()
        out.append(((img - lo) / (hi - lo) if hi > lo else img).astype(np.float32))
    return np.stack(out) if out else np.zeros((0, size, size), np.float32)


def answer(detector: FeatureOOD | None, score: float | None, reasons: list[str]) -> dict:
    """The served answer's ``out_of_distribution`` part: flag, score, threshold and reasons."""
    out: dict = {"flag": bool(reasons), "score": None, "threshold": None, "reasons": list(reasons)}
    if detector is None:
        out["note"] = ("this model has no out-of-distribution detector: evaluate and deploy it "
                       "again to get one")
        return out
    out["threshold"] = round(detector.threshold, 4)
    if score is not None and np.isfinite(score):
        out["score"] = round(float(score), 4)
        if score > detector.threshold:
            out["flag"] = True
            out["reasons"].append(
                f"image features unlike the training data (score {score:.2f} > "
                f"{detector.threshold:.2f}, the {detector.quantile:.0%} quantile on validation)"
            )
    return out


def features_of(net, head, x) -> np.ndarray:
    """Penultimate features (the input of ``head``, a layer of ``net``) for inputs (n, 1, S, S)."""
    import torch

    feats: list = []
    hook = head.register_forward_hook(lambda _m, args, _o: feats.append(args[0].flatten(1)))
    try:
        with torch.inference_mode():
            net(torch.as_tensor(x, dtype=torch.float32, device=next(net.parameters()).device))
    finally:
        hook.remove()
    return feats[0].float().cpu().numpy()


def ood_metrics(net, head, *, val: np.ndarray, external: np.ndarray | None, image_size: int,
                quantile: float = 0.99, n_unrelated: int = 60, seed: int = 7) -> dict:
    """Fit on ``val`` features; false alarms on ``external`` features (real radiographs from an
    unseen hospital) and detection of generated unrelated images; the detector itself."""
    import torch

    from bonebase.model.data import preprocess_for_model

    det = fit_ood(val, quantile=quantile)
    imgs = unrelated_images(n_unrelated, image_size, seed=seed)
    x = torch.stack([preprocess_for_model(i, image_size) for i in imgs]).numpy()
    flagged = det.flags(features_of(net.eval(), head, x))
    out = {
        "quantile": quantile,
        "threshold": det.threshold,
        "n_val": int(len(val)),
        "detection_unrelated": float(flagged.mean()),
        "n_unrelated": int(len(imgs)),
        "detector": det.to_dict(),
    }
    if external is not None and len(external):
        out["false_alarm_external"] = float(det.flags(external).mean())
        out["n_external"] = int(len(external))
    return out


__all__ = [
    "FeatureOOD",
    "LIMB_PARTS",
    "answer",
    "features_of",
    "fit_ood",
    "header_reasons",
    "ood_metrics",
    "unrelated_images",
]
