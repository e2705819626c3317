"""How much of the label the synthetic radiographs carry *outside* the lesion (#21).

Each case's first view is rendered twice from the same random stream: as the generator does,
and with the lesion's amplitudes set to zero (same patient, bone, age, side, site scanner; no
tumour). A linear classifier on the small pixel grid (``side`` x ``side``), trained on the other
sites and tested on the held-out site, gives the external AUC *with* and *without* the lesion:
an AUC well above 0.5 without any lesion is label information in anatomy (skeletal maturity,
which bone, its shape), the site's scanner and case mix: the shortcuts a CNN can take. The same
for the clinical variables alone (age; age + bone) gives their ceiling.

    python -m bonebase.synth.leak [--sites 4] [--cases-per-site 100] [--seed 7] [--side 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bonebase.dicom.pixels import resize_keep_aspect
from bonebase.synth.clinical import plan_cases
from bonebase.synth.lesions import Lesion, sample_lesion
from bonebase.synth.phantom import render_radiograph
from bonebase.synth.sites import make_sites
from bonebase.vocab import lookup_diagnosis, task_label

NO_LESION = dict(depth=0.0, scl=0.0, rim=0.0, septa=0, perm=0.0, calc=0, mass=0.0, sunburst=0.0,
                 codman=0.0, onion=0.0, exo=None)  # fmt: skip


def without_lesion(lesion: Lesion) -> Lesion:
    """The same lesion parameters with every visible amplitude at zero (nothing is painted)."""
    return dataclasses.replace(lesion, **NO_LESION)


def render_pairs(*, sites: int, cases_per_site: int, seed: int, side: int) -> dict:
    """Per case: site, label, age, bone, and its first view with and without the lesion
    (``side`` x ``side`` floats), planned exactly as :func:`bonebase.synth.generate` plans."""
    root = np.random.SeedSequence(seed)
    profile_seq, *site_seqs = root.spawn(sites + 1)
    profiles = make_sites(sites, np.random.default_rng(profile_seq))
    rows: dict[str, list] = {k: [] for k in ("site", "y", "age", "bone", "with", "without")}
    for site, seq in zip(profiles, site_seqs, strict=True):
        plan_seq, _fault, _finish, cases_seq = seq.spawn(4)
        cases = plan_cases(site, cases_per_site, np.random.default_rng(plan_seq),
                           cases_seq.spawn(cases_per_site))  # fmt: skip
        for case in cases:
            dx = lookup_diagnosis(case.diagnosis)
            if not case.views or dx is None:
                continue
            seg, bone = case.location.split("_", 1)
            images = []
            for paint in (True, False):
                # The same stream as casegen.render_case up to the first view's rendering.
                rng = np.random.default_rng(np.random.SeedSequence(case.seed))
                lesion = sample_lesion(rng, case.diagnosis, seg)
                H = int(rng.integers(site.size[0], site.size[1] + 1)) // 2 * 2
                W = int(H * rng.uniform(0.75, 1.0)) // 2 * 2
                img, _ = render_radiograph(
                    rng, shape=(H, W), bone=bone, segment=seg, age=case.age,
                    lesion=lesion if paint else without_lesion(lesion), view=case.views[0],
                    noise=site.noise, blur=site.blur, exposure=site.exposure,
                )  # fmt: skip
                img = img[:, ::-1] if case.side == "L" else img
                lo, hi = np.percentile(img, [1, 99])
                images.append(resize_keep_aspect(np.clip((img - lo) / (hi - lo + 1e-6), 0, 1), side))
            rows["site"].append(site.code)
            rows["y"].append(int(task_label("benign_vs_malignant", dx)))
            rows["age"].append(case.age)
            rows["bone"].append(case.location)
            rows["with"].append(images[0].ravel())
            rows["without"].append(images[1].ravel())
    return {k: np.asarray(v) for k, v in rows.items()}


def external_auc(x: np.ndarray, y: np.ndarray, test: np.ndarray, *, pca: int | None) -> float:
    """AUC on ``test`` rows of a (PCA +) logistic regression fitted on the others."""
    steps = [StandardScaler()]
    if pca:
        steps.append(PCA(n_components=min(pca, int((~test).sum()) - 1), random_state=0))
    model = make_pipeline(*steps, LogisticRegression(C=0.05, max_iter=3000))
    model.fit(x[~test], y[~test])
    return float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))


def measure(*, sites: int = 4, cases_per_site: int = 100, seed: int = 7, side: int = 32) -> dict:
    """External-site AUCs (the last site held out) with and without the lesion, and clinical."""
    d = render_pairs(sites=sites, cases_per_site=cases_per_site, seed=seed, side=side)
    test = d["site"] == d["site"][-1]
    y = d["y"]
    age = d["age"].reshape(-1, 1).astype(float)
    bone = OneHotEncoder(handle_unknown="ignore").fit(d["bone"][~test].reshape(-1, 1))
    age_bone = np.c_[age, bone.transform(d["bone"].reshape(-1, 1)).toarray()]
    return {
        "cases": int(len(y)), "external_site": str(d["site"][-1]), "external_cases": int(test.sum()),
        "side_px": side,
        "auc_pixels_with_lesion": external_auc(d["with"], y, test, pca=50),
        "auc_pixels_without_lesion": external_auc(d["without"], y, test, pca=50),
        "auc_age": external_auc(age, y, test, pca=None),
        "auc_age_and_location": external_auc(age_bone, y, test, pca=None),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--cases-per-site", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--side", type=int, default=32)
    a = ap.parse_args(argv)
    print(json.dumps(measure(sites=a.sites, cases_per_site=a.cases_per_site, seed=a.seed,
                             side=a.side), indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
