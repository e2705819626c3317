"""Where a secret could be found by someone who reads Prefect's API or its database, the files
of BONEBASE_HOME, or our database's rows (used by the secrets tests and the demo's scan)."""

from __future__ import annotations

import base64
from pathlib import Path


def forms(value: str) -> set[bytes]:
    """The ways code could write ``value`` into a file: text, hex, base64."""
    raw = value.encode()
    return {raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
            base64.urlsafe_b64encode(raw)}  # fmt: skip


def _wanted(values: list[str]) -> set[bytes]:
    return set().union(*(forms(v) for v in values))


def prefect_leaks(values: list[str]) -> list[str]:
    """Where Prefect holds any of ``values``: its API's flow runs, task runs, logs and
    artifacts, and the bytes of its SQLite database (and write-ahead log)."""
    from prefect import get_client

    from bonebase.prefect_scrub import local_sqlite_path

    wanted = _wanted(values)
    found = []
    with get_client(sync_client=True) as client:
        answers = {
            "flow runs": client.read_flow_runs(),
            "task runs": client.read_task_runs(),
            "logs": client.read_logs(),
            "artifacts": client.read_artifacts(),
        }
    for where, items in answers.items():
        text = "\n".join(item.model_dump_json() for item in items).encode()
        found += [f"API {where}" for w in wanted if w in text]
    db = local_sqlite_path()
    assert db is not None and db.is_file(), "the test expects Prefect's SQLite database"
    for part in (db, db.with_name(db.name + "-wal")):
        if part.exists():
            data = part.read_bytes()
            found += [f"file {part.name}" for w in wanted if w in data]
    return found


def file_leaks(root: Path, values: list[str], *, allowed: set[Path] = frozenset()) -> list[str]:
    """The files under ``root`` (but ``allowed``) whose bytes hold any of ``values``."""
    wanted = _wanted(values)
    found = []
    for path in sorted(root.rglob("*")):
        if path in allowed or path.is_symlink() or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:  # a socket or a file the embedded server holds exclusively
            continue
        if any(w in data for w in wanted):
            found.append(str(path.relative_to(root)))
    return found


def database_leaks(conn, values: list[str]) -> list[str]:
    """The tables of our database that hold any of ``values`` in any row (as text)."""
    wanted = [w.decode() for w in _wanted(values)]
    tables = [r["tablename"] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]  # fmt: skip
    found = []
    for table in tables:
        hit = conn.execute(
            f'SELECT 1 FROM "{table}" t WHERE t::text LIKE ANY(%s) LIMIT 1',
            ([f"%{w}%" for w in wanted],),
        ).fetchone()
        if hit:
            found.append(table)
    return found
