"""The retraining flow end to end: real PostgreSQL, Prefect, git, DVC and a (tiny) training run.

A copy of this checkout (the files git tracks or would track) is the project the flow runs
`dvc repro` in, with params.yaml shrunk so training and evaluation take seconds.
"""

from __future__ import annotations

import pytest
import yaml

from bonebase.db.engine import connect
from bonebase.release.retrain import recipe_hash
from tests.flows.world import TINY, copy_project

pytestmark = pytest.mark.slow


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
def world(ingested_copy, tmp_path_factory, prefect_harness):
    """Two hospitals ingested (MUC is the external site) and a project copy to train in; the
    flows read these settings from the environment, as in production."""
    from bonebase.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        settings = ingested_copy(tmp_path_factory.mktemp("home"))
        for name, value in settings.environ().items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        yield settings, copy_project(tmp_path_factory.mktemp("project"), TINY)
    get_settings.cache_clear()


def test_retrain_registers_a_gated_candidate_and_never_deploys(world):
    from flows.retrain import retrain_flow

    settings, project = world
    out = retrain_flow("params.yaml", str(project))
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
    out = retrain_flow("params.yaml", str(project))
    assert out["skipped"] is True and "nothing changed" in out["reason"]
    with connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM models").fetchone()["n"] == 1
        assert conn.execute("SELECT count(*) AS n FROM dataset_versions").fetchone()["n"] == 1
