"""Training on a pinned dataset version, and reproducing its metrics from clean clones.

A copy of this checkout is the project (dvc.yaml, params.yaml shrunk so training and evaluation
take seconds). Version 1 is cut from a database with two hospitals; `bonebase dataset checkout 1
--to data --lock-to splits/assignments.csv` + `dvc repro --downstream split` trains on it; then a
git clone of that project, with a fresh clone of the dataset workspace (data only from the DVC
remote), runs `dvc repro --single-item train evaluate` and must land on the same metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bonebase.dataset.marker import content_hash, dataset_identity, read_marker
from bonebase.dataset.versioning import Target, checkout, version_dataset
from bonebase.storage import open_store
from flows.version_dataset import load_params
from tests.flows.world import TINY, copy_project

pytestmark = pytest.mark.slow

# CPU training with fixed seeds is deterministic; the margin covers BLAS thread scheduling.
AUC_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def version_1(ingested_copy, tmp_path_factory, prefect_harness):
    """HX and MUC ingested, dataset version 1 cut with the project's (tiny) params."""
    home = tmp_path_factory.mktemp("home")
    settings = ingested_copy(home)
    url = settings.database_url
    params = tmp_path_factory.mktemp("params") / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    export_params, split_params = load_params(params)
    target = Target(home / "workspace", str(home / "dvc-remote"))
    out = version_dataset(
        url,
        open_store(settings.object_store_url),
        target=target,
        export_params=export_params,
        split_params=split_params,
    )
    assert out.version is not None and out.version.version == 1
    return settings, target


def _dvc(project: Path, *args: str) -> None:
    # dvc.yaml's commands say `python`: make it this interpreter (the venv's).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _locked(project: Path) -> dict[str, str]:
    """md5 of each data/ dependency in dvc.lock, by path (what the run was computed from)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        dep["path"]: dep["md5"]
        for stage in lock["stages"].values()
        for dep in stage.get("deps", [])
        if dep["path"].startswith("data/")
    }


def _checkpoint_version(project: Path) -> str:
    from bonebase.model.checkpoint import load_checkpoint

    return load_checkpoint(project / "models" / "model.pt").dataset_version


def test_train_on_version_1_then_reproduce_from_clean_clones(version_1, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bonebase.config import get_settings
    from bonebase.dataset.cli import dataset_app

    settings, target = version_1
    ws = target.workspace
    project = copy_project(tmp_path / "project", TINY)

    # Train on the pinned version: the CLI restores data/ and the split lock; split re-runs on
    # the version's lock (a no-op), then train and evaluate. The export never runs.
    monkeypatch.setenv("BONEBASE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(
            dataset_app,
            [
                "checkout", "1", "--to", str(project / "data"),
                "--lock-to", str(project / "splits" / "assignments.csv"),
            ],
        )  # fmt: skip
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert (project / "splits" / "assignments.csv").read_bytes() == (
        ws / "splits" / "assignments.csv"
    ).read_bytes()
    version_split = (project / "data" / "split.csv").read_bytes()
    _dvc(project, "repro", "--downstream", "split")
    data = project / "data"
    assert (data / "split.csv").read_bytes() == version_split  # the version's split, kept
    assert read_marker(data)["version"] == 1
    assert dataset_identity(data) == f"v1:{content_hash(data)}"
    # The checkpoint names exactly these data (pipelines/train.py records their hash).
    assert _checkpoint_version(project) == f"v1:{content_hash(data)}"
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert {"test", "external"} <= set(metrics)
    subprocess.run(
        ["git", "add", "-f", "dvc.lock", "reports/metrics.json"], cwd=project, check=True
    )
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "v1 run"],
        cwd=project,
        check=True,
    )

    # A clean clone of the project, and a fresh clone of the dataset workspace: no DVC cache,
    # so every image comes from the remote. `dvc repro` must give the same metrics.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    assert not (clone / "data").exists() and not (clone / "models").exists()
    row, _ = checkout(settings.database_url, 1, workspace=tmp_path / "ws2", dest=clone / "data")
    assert row.version == 1 and read_marker(clone / "data")["version"] == 1
    _dvc(clone, "repro", "--single-item", "train", "evaluate")
    first, second = _locked(project), _locked(clone)
    assert {"data/images", "data/labels.csv", "data/split.csv"} <= set(second)
    assert all(second[path] == first[path] for path in second)  # the same data, hash by hash
    again = json.loads((clone / "reports" / "metrics.json").read_text())
    for part in ("test", "external"):
        assert again[part]["auc"] == pytest.approx(metrics[part]["auc"], abs=AUC_TOLERANCE)
        assert again[part]["n_cases"] == metrics[part]["n_cases"]
