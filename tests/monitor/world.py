"""The watch's world: a champion trained on one hospital, then two new hospitals, one like it
and one with a strong site effect (its radiographs re-exposed: darker, compressed raw values).

The site effect is made here, after the generator (bonebase/synth is not changed): every
radiograph's stored values are scaled by ``factor`` while its display window stays, as a
detector recalibrated without its window presets would deliver them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from bonebase.config import Settings
from bonebase.db.engine import connect
from bonebase.db.sites import add_site

TASK = "benign_vs_malignant"
TRAINING, LIKE, SHIFTED = "HX", "HXC", "HXD"


def generate_site(out: Path, code: str, *, seed: int, cases: int) -> Path:
    """A submission folder of the HX template generated with ``seed`` (another hospital of the
    same kind: other patients, exposure, sizes), to be ingested under ``code``."""
    from bonebase.synth import generate

    generate(out / f"gen-{code}", sites=1, cases_per_site=cases, seed=seed, workers=2)
    return out / f"gen-{code}" / "HX" / "submission"


def reexpose(submission: Path, *, factor: float = 0.35) -> int:
    """Scale the stored pixel values of every radiograph of ``submission`` by ``factor`` (the
    exposure recorded scaled too); returns how many files changed."""
    changed = 0
    for path in sorted(submission.rglob("*")):
        if not path.is_file() or path.name == "manifest.csv":
            continue
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - a fault the generator injected: left as it is
            continue
        if ds.get("Modality") not in ("CR", "DX") or "PixelData" not in ds:
            continue
        try:
            stored = ds.pixel_array
        except Exception:  # noqa: BLE001 - corrupt pixels injected on purpose
            continue
        if stored.ndim != 2:
            continue
        ds.PixelData = np.rint(stored * factor).astype(stored.dtype).tobytes()
        if "ExposureInuAs" in ds:
            ds.ExposureInuAs = int(ds.ExposureInuAs * factor)
        ds.save_as(path)
        changed += 1
    return changed


def train_champion(conn, store, data: Path) -> int:
    """Export the database's view, split it, train a tiny model, register and deploy it (as
    `bonebase models deploy` marks it; the BentoML store is not needed to watch); its id."""
    import pandas as pd

    from bonebase.dataset.export import export
    from bonebase.dataset.split import assign_splits, write_assignments
    from bonebase.db import models as q
    from bonebase.model.checkpoint import save_checkpoint
    from bonebase.model.data import load_frame
    from bonebase.model.train import train
    from bonebase.release.registry import register

    export(conn, store, data, size=64, bits=8, modalities=["CR", "DX"])
    labels = pd.read_csv(data / "labels.csv", dtype=str)
    split = assign_splits(labels, None, seed=3, val_fraction=0.25, test_fraction=0.2)
    write_assignments(split, data / "split.csv")
    ckpt = train(frame=load_frame(data, task=TASK), data_dir=data, task=TASK, image_size=64,
                 epochs=1, batch_size=16, patience=1, num_workers=0, seed=1, amp=False)
    path = save_checkpoint(ckpt, data / "model.pt")
    row = register(conn, store, checkpoint=path, metrics={"task": TASK}, by="test")
    q.set_status(conn, row["id"], status="deployed")
    conn.commit()
    return row["id"]


def add_sites(url: str, codes) -> None:
    with connect(url) as conn:
        for code in codes:
            add_site(conn, code=code, name=f"Hospital {code}")


def settings_for(url: str, home: Path) -> Settings:
    settings = Settings(home=home, database_url=url, secret="t" * 40, env="test")
    settings.ensure_home()
    return settings
