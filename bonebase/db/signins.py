"""Failed sign-ins and the lockout they cause (migration 0005), shared by every web worker.

A key (an account or a client address) is locked while it has ``limit`` failures within the
last ``window``; refused attempts are not failures (no password was tried), so the lock lifts
``window`` after the failure that reached the limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import Connection

_COLUMNS = {"account": "account_key", "address": "address"}


def serialize(conn: Connection, account_key: str) -> None:
    """Hold this account's sign-ins one at a time until the transaction ends, so that parallel
    guesses (from several workers) cannot all pass the check before any failure is written."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 (f"bonebase-sign-in:{account_key}",))


def locked_until(conn: Connection, *, kind: str, key: str, limit: int,
                 window: timedelta) -> datetime | None:
    """When the lock on ``key`` (``kind`` "account" or "address") lifts; None when not locked."""
    column = _COLUMNS[kind]
    # The limit-th most recent failure within the window: while it is inside, so is the lock.
    row = conn.execute(
        f"SELECT at + %s AS until FROM sign_in_failures WHERE {column} = %s"
        " AND at > now() - %s ORDER BY at DESC OFFSET %s LIMIT 1",
        (window, key, window, limit - 1),
    ).fetchone()
    return None if row is None else row["until"]


def record_failure(conn: Connection, *, account_key: str, address: str,
                   window: timedelta) -> None:
    conn.execute("INSERT INTO sign_in_failures (account_key, address) VALUES (%s, %s)",
                 (account_key, address))
    # Pruned here rather than in a background job: nothing older than the window matters.
    conn.execute("DELETE FROM sign_in_failures WHERE at < now() - %s", (window,))


def clear_account(conn: Connection, account_key: str) -> int:
    """Forget an account's failures (after its right password, or an administrator's unlock);
    the failures stay counted for their addresses. Returns how many were forgotten."""
    return conn.execute("DELETE FROM sign_in_failures WHERE account_key = %s",
                        (account_key,)).rowcount


def clear_address(conn: Connection, address: str) -> int:
    """Forget a client address's failures (an administrator's unlock)."""
    return conn.execute("DELETE FROM sign_in_failures WHERE address = %s", (address,)).rowcount


def now(conn: Connection) -> datetime:
    return conn.execute("SELECT now() AS t").fetchone()["t"]
