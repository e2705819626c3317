"""The retraining flow end to end: real PostgreSQL, Prefect, git, DVC and a (tiny) training run.

A copy of this checkout (the files git tracks or would track) is the project the flow runs
`dvc repro` in, with params.yaml shrunk so training and evaluation take seconds.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bonebase.config import Settings
from bonebase.db.engine import connect
from bonebase.db.sites import add_site
from bonebase.retrain import recipe_hash

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
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


def copy_project(dest: Path, params: dict) -> Path:
    """The checkout's files (tracked, or untracked and not ignored) in a fresh git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "project"], cwd=dest, check=True)
    return dest


def test_recipe_changes_with_train_params_not_with_comments(tmp_path):
    project = copy_project(tmp_path / "p", TINY)
    params = project / "params.yaml"
    first, parts = recipe_hash(project, params)
    assert parts["code_revision"] and not parts["code_revision"].endswith("-dirty")
    params.write_text("# a comment\n" + params.read_text())
    assert recipe_hash(project, params)[0] == first
    params.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "epochs": 3}}))
    assert recipe_hash(project, params)[0] != first


@pytest.fixture(scope="module")
def world(fresh_database, tmp_path_factory, prefect_harness):
    """Two hospitals ingested (MUC is the external site) and a project copy to train in."""
    from bonebase.db.migrate import upgrade
    from bonebase.synth import generate
    from flows.ingest import ingest_submission

    synth = tmp_path_factory.mktemp("synth")
    for code, seed in (("HX", 3), ("MUC", 5)):
        generate(synth / f"gen-{code}", sites=1, cases_per_site=22, seed=seed, workers=2)
        (synth / f"gen-{code}" / "HX").rename(synth / code)
    url = fresh_database()
    upgrade(url)
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, database_url=url, secret="t" * 40, env="test")
    settings.ensure_home()
    with connect(url) as conn:
        for code in ("HX", "MUC"):
            add_site(conn, code=code, name=f"Hospital {code}")
    for code in ("HX", "MUC"):
        ingest_submission(code, str(synth / code / "submission"), settings=settings)
    project = copy_project(tmp_path_factory.mktemp("project"), TINY)
    return settings, project


def test_retrain_registers_a_gated_candidate_and_never_deploys(world):
    from flows.retrain import retrain_flow

    settings, project = world
    out = retrain_flow("params.yaml", str(project), settings=settings)
    assert out["skipped"] is False and out["dataset_version"] == 1
    assert "# Retraining on dataset version 1" in out["markdown"]
    assert "## Release gate" in out["markdown"] and "auc_ci_low" in out["markdown"]
    with connect(settings.database_url) as conn:
        model = conn.execute("SELECT * FROM models WHERE id = %s", (out["model_id"],)).fetchone()
        assert model["status"] == "candidate" and model["dataset_version"] == "v1"
        assert model["created_by"] == "retrain-flow"
        assert conn.execute("SELECT count(*) AS n FROM deployments").fetchone()["n"] == 0
        run = conn.execute(
            "SELECT entity_id, details FROM audit_events WHERE action = 'retrain.run'"
        ).fetchall()
    assert [r["entity_id"] for r in run] == ["1"]
    assert run[0]["details"]["model_id"] == out["model_id"]
    assert run[0]["details"]["gate_passed"] == out["gate_passed"]
    import pandas as pd

    labels = pd.read_csv(project / "data" / "labels.csv", dtype=str)
    cases = set(zip(labels["site"], labels["case_id"], strict=True))
    with connect(settings.database_url) as conn:
        in_version = conn.execute(
            "SELECT count(*) AS n FROM dataset_version_cases WHERE version = 1"
        ).fetchone()["n"]
    assert in_version == len(cases) > 0  # the web database filters cases by version with these
    metrics = yaml.safe_load((project / "reports" / "metrics.json").read_text())
    assert model["metrics"]["external"]["auc"] == pytest.approx(metrics["external"]["auc"])


def test_second_run_with_nothing_new_is_skipped(world):
    from flows.retrain import retrain_flow

    settings, project = world
    out = retrain_flow("params.yaml", str(project), settings=settings)
    assert out["skipped"] is True and "nothing changed" in out["reason"]
    with connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM models").fetchone()["n"] == 1
        assert conn.execute("SELECT count(*) AS n FROM dataset_versions").fetchone()["n"] == 1
