"""Quarantine queries: every rejected file or manifest row, with its reason, until resolved."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import Connection

from bonebase.db import audit
from bonebase.errors import InputError, NotFoundError


@dataclass(frozen=True)
class QuarantineItem:
    reason: str
    message: str
    severity: str = "error"
    file: str | None = None
    row_number: int | None = None
    case_ref: str | None = None
    object_key: str | None = None


def add_many(conn: Connection, *, submission_id: int, site_id: int,
             items: list[QuarantineItem]) -> None:
    """Insert items; an item already recorded for this submission (same reason/file/row) is skipped,
    so a re-run after a crash does not double them."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quarantine_items (submission_id, site_id, reason, severity, message, file,"
            " row_number, case_ref, object_key)"
            " SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s WHERE NOT EXISTS ("
            "  SELECT 1 FROM quarantine_items WHERE submission_id = %s AND reason = %s"
            "  AND file IS NOT DISTINCT FROM %s AND row_number IS NOT DISTINCT FROM %s)",
            [(submission_id, site_id, i.reason, i.severity, i.message, i.file, i.row_number,
              i.case_ref, i.object_key, submission_id, i.reason, i.file, i.row_number)
             for i in items],
        )


def counts_by_reason(conn: Connection, *, submission_id: int) -> dict[str, int]:
    """How many items a submission has, per reason code (whichever run recorded them)."""
    return {r["reason"]: r["n"] for r in conn.execute(
        "SELECT reason, count(*) AS n FROM quarantine_items WHERE submission_id = %s"
        " GROUP BY reason ORDER BY reason", (submission_id,))}


def list_items(conn: Connection, *, site: str | None = None, status: str | None = "open",
               submission_id: int | None = None, limit: int = 500) -> list[dict]:
    clauses, args = [], []
    if site:
        clauses.append("t.code = %s")
        args.append(site)
    if status:
        clauses.append("q.status = %s")
        args.append(status)
    if submission_id is not None:
        clauses.append("q.submission_id = %s")
        args.append(submission_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return list(conn.execute(
        "SELECT q.*, t.code AS site FROM quarantine_items q JOIN sites t ON t.id = q.site_id"
        f" {where} ORDER BY q.id LIMIT %s",
        (*args, limit),
    ).fetchall())


def get_item(conn: Connection, item_id: int) -> dict:
    """One item, with its site's code as ``site``."""
    row = conn.execute(
        "SELECT q.*, t.code AS site FROM quarantine_items q JOIN sites t ON t.id = q.site_id"
        " WHERE q.id = %s", (item_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no quarantine item {item_id}; `bonebase quarantine list` shows them")
    return row


def resolve(conn: Connection, item_id: int, *, status: str, reason: str, actor: str) -> dict:
    """Mark an open item released (after a fix) or discarded, with who and why."""
    if status not in ("released", "discarded"):
        raise InputError(f"status must be released or discarded, not {status!r}")
    if not reason.strip():
        raise InputError("a reason is required to release or discard a quarantined item")
    item = get_item(conn, item_id)
    if item["status"] != "open":
        raise InputError(f"quarantine item {item_id} is already {item['status']}")
    with conn.transaction():
        row = conn.execute(
            "UPDATE quarantine_items SET status = %s, resolution = %s, resolved_by = %s,"
            " resolved_at = now() WHERE id = %s RETURNING *",
            (status, reason, actor, item_id),
        ).fetchone()
        audit.record(conn, action=f"quarantine.{status}", entity="quarantine_item",
                     entity_id=item_id, actor=actor, details={"reason": reason})
    return row


def record_view(conn: Connection, item_id: int, *, actor: str, part: str) -> None:
    """Record that ``actor`` looked at a held item's original (``part``: page, header, image):
    the originals are identified, so every look is in the audit log."""
    audit.record(conn, action="quarantine.view", entity="quarantine_item", entity_id=item_id,
                 actor=actor, details={"part": part})
    conn.commit()
