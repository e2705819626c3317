"""Shared pieces of the flow tests: two small ingested hospitals, and a copy of this checkout
to run the DVC pipeline in with tiny params."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from bonebase.config import Settings
from bonebase.db.engine import connect
from bonebase.db.sites import add_site

ROOT = Path(__file__).resolve().parents[2]

#: params.yaml shrunk so that training and evaluation take seconds (MUC is the external site).
TINY = {
    "task": "benign_vs_malignant",
    "export": {"size": 64, "bits": 8, "modalities": ["CR", "DX"], "intermediate_as": "benign"},
    "split": {"seed": 7, "val_fraction": 0.25, "test_fraction": 0.25, "external_sites": ["MUC"]},
    "train": {
        "arch": "resnet18", "image_size": 64, "epochs": 2, "batch_size": 16, "lr": 0.001,
        "weight_decay": 0.0, "patience": 1, "seed": 1, "num_workers": 0, "amp": False,
        "pretrained": None,
    },
    "evaluate": {
        "bootstrap": 50, "fixed_sensitivity": 0.9, "temperature_scaling": True,
        "gradcam_per_class": 1, "tsne": False, "seed": 1,
    },
    "release": {"auc_ci_low_min": 0.7, "site_auc_min": 0.65, "ece_max": 0.1, "min_test_cases": 5},
}  # fmt: skip


def two_submissions(out: Path) -> Path:
    """``out/HX`` (seed 3) and ``out/MUC`` (another hospital's, seed 5): synthetic HX-layout
    submission folders of different seeds, the MUC one to be ingested under the code MUC."""
    from bonebase.synth import generate

    for code, seed in (("HX", 3), ("MUC", 5)):
        generate(out / f"gen-{code}", sites=1, cases_per_site=22, seed=seed, workers=2)
        (out / f"gen-{code}" / "HX").rename(out / code)
    return out


def settings_for(url: str, home: Path) -> Settings:
    """The flows' settings: the database at ``url``, ``home`` (made), a test consortium key."""
    settings = Settings(home=home, database_url=url, secret="t" * 40, env="test")
    settings.ensure_home()
    return settings


def ingested_world(url: str, home: Path, synth: Path) -> Settings:
    """A migrated database at ``url`` with HX and MUC registered and both submissions ingested."""
    from bonebase.db.migrate import upgrade
    from flows.ingest import ingest_submission

    upgrade(url)
    settings = settings_for(url, home)
    with connect(url) as conn:
        for code in ("HX", "MUC"):
            add_site(conn, code=code, name=f"Hospital {code}")
    for code in ("HX", "MUC"):
        ingest_submission(code, str(synth / code / "submission"), settings=settings)
    return settings


def copy_project(dest: Path, params: dict | None) -> Path:
    """The checkout's files (tracked, or untracked and not ignored) in a fresh git repository,
    with ``params`` as its params.yaml (None: the checkout's)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if params is not None:
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "project"], cwd=dest, check=True)
    return dest
