"""Audit events: every change a person or a flow makes leaves one row."""

from __future__ import annotations

import getpass
import os
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb


def current_actor() -> str:
    """Who acts: BONEBASE_ACTOR when set (flows, services), else the login name."""
    return os.environ.get("BONEBASE_ACTOR") or getpass.getuser()


def record(
    conn: Connection,
    *,
    action: str,
    entity: str,
    entity_id: str | int | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO audit_events (actor, action, entity, entity_id, details)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (actor or current_actor(), action, entity, None if entity_id is None else str(entity_id),
         Jsonb(details or {})),
    ).fetchone()
    return row["id"] if isinstance(row, dict) else row[0]


def events(conn: Connection, *, entity: str | None = None, entity_id: str | None = None,
           limit: int = 100) -> list[dict]:
    clauses, args = [], []
    if entity:
        clauses.append("entity = %s")
        args.append(entity)
    if entity_id is not None:
        clauses.append("entity_id = %s")
        args.append(str(entity_id))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = conn.execute(
        f"SELECT id, at, actor, action, entity, entity_id, details FROM audit_events {where}"
        " ORDER BY id DESC LIMIT %s",
        (*args, limit),
    )
    return list(cur.fetchall())
