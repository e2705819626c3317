"""Prefect flow `retrain`: the scheduled retraining of the diagnosis model.

version the dataset (#5) → skip when the latest version was already trained with the same
recipe (dvc.yaml + train/evaluate params + code revision) → check the version out into the
project's data/ → `dvc repro --single-item train evaluate` → register the candidate → run the
release gate (head to head with the champion on the same locked cases) → a markdown artifact
that puts candidate and champion side by side. It never deploys: that needs a named approval.

Runs in a bonebase checkout (``project_dir``: dvc.yaml, params.yaml, pipelines/); the schedule
is a Prefect deployment of this flow (`bonebase schedule enable`, prefect.yaml).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from bonebase.config import get_settings
from bonebase.errors import ConfigError
from flows.version_dataset import version_dataset_flow

#: The checkout this file lives in (an editable install); deployments pass it explicitly.
DEFAULT_PROJECT = Path(__file__).resolve().parents[1]


# No parameter of a flow or task here is a secret or holds one (Settings, DATABASE_URL): Prefect
# stores flow-run parameters in its database, UI and API. Each task reads the environment.


def _connect():
    from bonebase.db.engine import connect, database_url

    return connect(database_url(get_settings()))


def _store():
    from bonebase.storage import open_store

    settings = get_settings()
    return open_store(
        settings.object_store_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )


@task(name="check-out-version", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def check_out(workspace: str, version: int, project: Path) -> str:
    """Put dataset ``version`` (images, labels, split) into the project's data/."""
    from bonebase.dataset.versioning import checkout
    from bonebase.db.engine import database_url

    row, path = checkout(
        database_url(get_settings()), version, workspace=Path(workspace), dest=project / "data"
    )
    return str(path)


@task(name="train-and-evaluate", cache_policy=NO_CACHE)
def train_and_evaluate(project: Path) -> None:
    """`dvc repro --single-item train evaluate` in the project, its output in the flow's log."""
    from bonebase.release.retrain import run_pipeline

    logger = get_run_logger()
    run_pipeline(project, on_line=logger.info)


@task(name="register-and-gate", cache_policy=NO_CACHE)
def register_and_gate(project: Path, params: Path, version: int) -> dict:
    """Register models/model.pt as a candidate and run the release gate on it."""
    from bonebase.db import models as q
    from bonebase.release import registry
    from bonebase.release.cli import release_policy

    with _connect() as conn:
        store = _store()
        model = registry.register(
            conn,
            store,
            checkpoint=project / "models" / "model.pt",
            metrics=project / "reports" / "metrics.json",
            report=project / "reports" / "report.html",
            by="retrain-flow",
            dataset_version=f"v{version}",
        )
        result = registry.gate(
            conn, store, model["id"], policy=release_policy(params), data_dir=project / "data"
        )
        champion = q.deployed_model(conn, task=model["task"])
    return {"model": model, "gate": result, "champion": champion}


@flow(name="retrain", log_prints=True)
def retrain_flow(
    params_path: str = "params.yaml",
    project_dir: str | None = None,
    *,
    force: bool = False,
    truth_dir: str | None = None,
) -> dict:
    """Retrain on the newest dataset version unless nothing changed; never deploys (database,
    object store and HOME from the environment: BONEBASE_*, DATABASE_URL)."""
    from bonebase.dataset.versioning import default_target
    from bonebase.db import datasets
    from bonebase.release.retrain import comparison_markdown, recipe_hash, record_run, skip_reason

    project = Path(project_dir) if project_dir else DEFAULT_PROJECT
    params = Path(params_path) if Path(params_path).is_absolute() else project / params_path
    recipe, parts = recipe_hash(project, params)
    target = default_target(get_settings())

    cut = version_dataset_flow(str(params), target=target, truth_dir=truth_dir)
    with _connect() as conn:
        latest = datasets.latest_version(conn)
        if latest is None:
            raise ConfigError(
                "no dataset version to train on: ingest submissions (bonebase submit) first"
            )
        reason = None if force else skip_reason(conn, dataset_version=latest.version, recipe=recipe)
    if reason:
        print(reason)
        create_markdown_artifact(
            key="retrain", markdown=f"# Retraining skipped\n\n{reason}\n", description=reason
        )
        return {"skipped": True, "reason": reason, "dataset_version": latest.version}

    print(f"training on dataset version {latest.version} ({cut['message']}); recipe {recipe}")
    check_out(str(latest.workspace or target.workspace), latest.version, project)
    train_and_evaluate(project)
    out = register_and_gate(project, params, latest.version)
    model, gate, champion = out["model"], out["gate"], out["champion"]
    markdown = comparison_markdown(
        candidate=model, champion=champion, gate=gate, dataset_version=latest.version
    )
    create_markdown_artifact(
        key="retrain", markdown=markdown, description=f"candidate model {model['id']}"
    )
    with _connect() as conn:
        record_run(
            conn,
            dataset_version=latest.version,
            recipe=recipe,
            details={
                "model_id": model["id"],
                "gate_passed": gate["passed"],
                "champion": champion["id"] if champion else None,
                "code_revision": parts["code_revision"],
            },
        )
    print(
        f"candidate model {model['id']}: gate {'passed' if gate['passed'] else 'failed'}; "
        f"not deployed (bonebase models approve {model['id']} --by NAME)"
    )
    return {
        "skipped": False,
        "dataset_version": latest.version,
        "model_id": model["id"],
        "gate_passed": gate["passed"],
        "champion": champion["id"] if champion else None,
        "markdown": markdown,
    }


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(retrain_flow(*sys.argv[1:2]))
