"""Model release queries: registered models, approvals and deployments (migration 0003)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase.errors import NotFoundError

STATUSES = ("candidate", "approved", "rejected", "deployed", "retired")
_MODEL_COLS = (
    "id, task, arch, status, checkpoint_key, checkpoint_sha256, metrics, report_key,"
    " dataset_version, code_revision, params_hash, threshold, created_by, created_at"
)


def insert_model(
    conn: Connection,
    *,
    task: str,
    arch: str,
    checkpoint_key: str,
    checkpoint_sha256: str,
    metrics: dict[str, Any],
    report_key: str | None,
    dataset_version: str | None,
    code_revision: str | None,
    params_hash: str | None,
    threshold: float | None,
    created_by: str,
) -> tuple[dict, bool]:
    """Insert a candidate; returns (row, created). The same checkpoint hash is one model."""
    row = conn.execute(
        "INSERT INTO models (task, arch, checkpoint_key, checkpoint_sha256, metrics, report_key,"
        " dataset_version, code_revision, params_hash, threshold, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" ON CONFLICT (checkpoint_sha256) DO NOTHING RETURNING {_MODEL_COLS}",
        (
            task,
            arch,
            checkpoint_key,
            checkpoint_sha256,
            Jsonb(metrics),
            report_key,
            dataset_version,
            code_revision,
            params_hash,
            threshold,
            created_by,
        ),
    ).fetchone()
    if row is not None:
        return row, True
    existing = conn.execute(
        f"SELECT {_MODEL_COLS} FROM models WHERE checkpoint_sha256 = %s", (checkpoint_sha256,)
    ).fetchone()
    return existing, False


def get_model(conn: Connection, model_id: int) -> dict:
    """One model row; NotFoundError names the id."""
    row = conn.execute(f"SELECT {_MODEL_COLS} FROM models WHERE id = %s", (model_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"model {model_id} is not registered; see `bonebase models list`")
    return row


def list_models(
    conn: Connection, *, task: str | None = None, status: str | None = None
) -> list[dict]:
    """Models, newest first, optionally of one task and/or status."""
    clauses, args = [], []
    if task:
        clauses.append("task = %s")
        args.append(task)
    if status:
        clauses.append("status = %s")
        args.append(status)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return list(
        conn.execute(f"SELECT {_MODEL_COLS} FROM models {where} ORDER BY id DESC", args).fetchall()
    )


def set_status(conn: Connection, model_id: int, *, status: str) -> None:
    """Change a model's status (the caller records the audit event)."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} not in {STATUSES}")
    conn.execute("UPDATE models SET status = %s WHERE id = %s", (status, model_id))


def deployed_model(conn: Connection, *, task: str) -> dict | None:
    """The model serving ``task`` now (status deployed), or None."""
    return conn.execute(
        f"SELECT {_MODEL_COLS} FROM models WHERE task = %s AND status = 'deployed'"
        " ORDER BY id DESC LIMIT 1",
        (task,),
    ).fetchone()


def add_approval(
    conn: Connection,
    *,
    model_id: int,
    decision: str,
    by: str,
    reason: str,
    gate: dict[str, Any],
    override: bool,
) -> dict:
    """Record an approval or rejection with the gate result it was made on."""
    return conn.execute(
        "INSERT INTO approvals (model_id, decision, by_person, reason, gate, override)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
        (model_id, decision, by, reason, Jsonb(gate), override),
    ).fetchone()


def approvals_of(conn: Connection, model_id: int) -> list[dict]:
    """Approvals and rejections of a model, oldest first."""
    return list(
        conn.execute(
            "SELECT * FROM approvals WHERE model_id = %s ORDER BY id", (model_id,)
        ).fetchall()
    )


def add_deployment(
    conn: Connection, *, model_id: int, action: str, by: str, bento_tag: str, url: str | None
) -> dict:
    """Record a deploy or rollback."""
    return conn.execute(
        "INSERT INTO deployments (model_id, action, by_person, bento_tag, url)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING *",
        (model_id, action, by, bento_tag, url),
    ).fetchone()


def deployments(conn: Connection, *, task: str | None = None, limit: int = 100) -> list[dict]:
    """Deployment history, newest first, with each row's model task."""
    where, args = ("WHERE m.task = %s", [task]) if task else ("", [])
    return list(
        conn.execute(
            "SELECT d.*, m.task FROM deployments d JOIN models m ON m.id = d.model_id"
            f" {where} ORDER BY d.id DESC LIMIT %s",
            (*args, limit),
        ).fetchall()
    )
