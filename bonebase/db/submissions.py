"""Submission queries: one row per distinct submission of a site, found again by content hash."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase.errors import NotFoundError


def register(conn: Connection, *, site_id: int, source: str, content_hash: str) -> tuple[dict, bool]:
    """Find or create the submission; returns (row, created)."""
    row = conn.execute(
        "INSERT INTO submissions (site_id, source, content_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id, content_hash) DO NOTHING RETURNING *",
        (site_id, source, content_hash),
    ).fetchone()
    if row is not None:
        return row, True
    row = conn.execute(
        "SELECT * FROM submissions WHERE site_id = %s AND content_hash = %s", (site_id, content_hash)
    ).fetchone()
    return row, False


# The first key of the two-key advisory locks taken on submissions (the second is the id), so
# that other users of advisory locks in the same database cannot collide with ours.
_LOCK_SPACE = 0x62627375  # 'bbsu'


def try_lock(conn: Connection, submission_id: int) -> bool:
    """Take the session-level lock that lets one run at a time work on a submission; False when
    another session holds it. PostgreSQL releases it when the session ends, a killed one too."""
    return conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok",
                        (_LOCK_SPACE, submission_id)).fetchone()["ok"]


def lock(conn: Connection, submission_id: int) -> None:
    """Wait for the submission's lock (see :func:`try_lock`)."""
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_SPACE, submission_id))


@contextmanager
def storing(conn: Connection) -> Iterator[None]:
    """Hold the consortium-wide lock under which one submission at a time checks what other
    sites hold and stores its cases, so that two sites sending the same images at once cannot
    both find them new (``conn`` in autocommit; a killed holder's session releases it)."""
    conn.execute("SELECT pg_advisory_lock(%s, 0)", (_LOCK_SPACE,))  # ids start at 1
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, 0)", (_LOCK_SPACE,))


def restart(conn: Connection, submission_id: int) -> None:
    conn.execute(
        "UPDATE submissions SET status = 'running', finished_at = NULL WHERE id = %s",
        (submission_id,),
    )


def finish(conn: Connection, submission_id: int, *, status: str, counts: dict, receipt: dict,
           source: str | None = None) -> None:
    """Record the final state and receipt; ``source``, when given, replaces the path as
    registered (its redacted form: folders are often named by PatientID)."""
    conn.execute(
        "UPDATE submissions SET status = %s, counts = %s, receipt = %s, finished_at = now(),"
        " source = COALESCE(%s, source) WHERE id = %s",
        (status, Jsonb(counts), Jsonb(receipt), source, submission_id),
    )


def get(conn: Connection, submission_id: int) -> dict:
    row = conn.execute(
        "SELECT s.*, t.code AS site FROM submissions s JOIN sites t ON t.id = s.site_id"
        " WHERE s.id = %s",
        (submission_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no submission {submission_id}; `bonebase submissions list` shows them"
        )
    return row


def list_(conn: Connection, *, site: str | None = None, limit: int = 50) -> list[dict]:
    where, args = ("WHERE t.code = %s", [site]) if site else ("", [])
    return list(conn.execute(
        "SELECT s.id, t.code AS site, s.source, s.status, s.counts, s.created_at, s.finished_at"
        f" FROM submissions s JOIN sites t ON t.id = s.site_id {where}"
        " ORDER BY s.id DESC LIMIT %s",
        (*args, limit),
    ).fetchall())
