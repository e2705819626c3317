"""A federated model enters the release path as any candidate does.

:func:`evaluate_at_consortium` runs the evaluation stage's own function on the consortium's
export (the locked test and external sets; ``eval-data``) with params.yaml's ``evaluate:``
section; :func:`register_run` registers the checkpoint with those metrics in the model registry
(:func:`bonebase.release.registry.register`) and adds a ``federated_runs`` row (migration 0013)
with the sites, rounds, strategy, privacy parameters, each site's dataset version and the
per-round history. From there ``bonebase models approve`` (the same release gate) and ``bonebase
models deploy`` treat it like every other model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase.errors import ConfigError, NotFoundError

EVALUATE_FILES = ("metrics.json", "roc.csv", "report.html")


def evaluate_params(params: str | Path | None) -> dict:
    """params.yaml's ``evaluate:`` section ({} without a file: the function's defaults)."""
    if not params:
        return {}
    path = Path(str(params))
    if not path.is_file():
        raise NotFoundError(f"params={path}: no such file; give the consortium's params.yaml")
    section = (yaml.safe_load(path.read_text()) or {}).get("evaluate") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: evaluate: must be a mapping")
    return section


def evaluate_at_consortium(model: Path, cfg: dict, out: Path) -> dict:
    """The evaluation stage on ``eval-data``: metrics.json, roc.csv, report.html in ``out``."""
    from bonebase.model.checkpoint import load_checkpoint
    from bonebase.model.data import load_frame
    from bonebase.model.evaluate import evaluate, write_outputs

    data = Path(str(cfg["eval-data"]))
    ckpt = load_checkpoint(model)
    ev = evaluate(
        checkpoint=ckpt,
        frame=load_frame(data, task=ckpt.task),
        data_dir=data,
        **evaluate_params(cfg["params"]),
    )
    paths = [out / name for name in EVALUATE_FILES]
    write_outputs(ev, metrics_json=paths[0], roc_csv=paths[1], report_html=paths[2])
    ext = ev.metrics.get("external") or ev.metrics.get("test") or {}
    return {"metrics": str(paths[0]), "report": str(paths[2]), "auc": ext.get("auc")}


def finite(value):
    """``value`` with every NaN or infinity replaced by None (a three-class task has no threshold,
    a site without both classes no AUC): PostgreSQL's jsonb and strict JSON refuse NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def record_run(conn: Connection, *, model_id: int, lineage: dict, by: str) -> dict:
    """A ``federated_runs`` row for ``model_id`` (one per registered federated model)."""
    lineage = finite(lineage)
    return conn.execute(
        "INSERT INTO federated_runs (model_id, sites, rounds, strategy, privacy, site_datasets,"
        " details, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (model_id) DO UPDATE SET model_id = EXCLUDED.model_id"
        " RETURNING id, model_id, sites, rounds, strategy, privacy, site_datasets, details,"
        " created_by, created_at",
        (
            model_id,
            list(lineage["sites"]),
            int(lineage["rounds"]),
            lineage["strategy"],
            Jsonb(lineage["privacy"]),
            Jsonb(lineage["site_datasets"]),
            Jsonb({k: v for k, v in lineage.items() if k not in ("sites", "rounds", "strategy",
                                                                 "privacy", "site_datasets")}),
            by,
        ),  # fmt: skip
    ).fetchone()


def run_of(conn: Connection, model_id: int) -> dict | None:
    """The federated run that made ``model_id`` (None for a centrally trained model)."""
    return conn.execute(
        "SELECT id, model_id, sites, rounds, strategy, privacy, site_datasets, details,"
        " created_by, created_at FROM federated_runs WHERE model_id = %s",
        (model_id,),
    ).fetchone()


def register_run(model: Path, out: Path, *, by: str | None) -> dict:
    """Register ``model`` (metrics and report from ``out``) as a candidate with its lineage."""
    from bonebase.cli_common import db_and_store
    from bonebase.db import audit
    from bonebase.release import registry

    metrics = out / "metrics.json"
    if not metrics.is_file():
        raise NotFoundError(
            f"{metrics}: a federated model is registered with its evaluation on the consortium's "
            "locked test set; give eval-data (--eval-data) too"
        )
    lineage = json.loads((out / "federated.json").read_text())
    lineage.pop("history", None)
    conn, store = db_and_store()
    with conn:
        report = out / "report.html"
        row = registry.register(
            conn, store, checkpoint=model, metrics=metrics,
            report=report if report.is_file() else None, by=by,
        )  # fmt: skip
        with conn.transaction():
            record_run(conn, model_id=row["id"], lineage=lineage,
                       by=by or audit.current_actor())  # fmt: skip
    return row


__all__ = ["evaluate_at_consortium", "evaluate_params", "record_run", "register_run", "run_of"]
