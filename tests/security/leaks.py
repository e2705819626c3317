"""Where a secret or an identifying value could be found by someone who reads Prefect's API
or its database, the files of BONEBASE_HOME, or our database's rows (the secrets tests and the
demo's scans)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

#: What a scan looks for: values (each in every form of :func:`forms`), or a pattern.
Wanted = list[str] | re.Pattern[bytes]


def forms(value: str) -> set[bytes]:
    """The ways code could write ``value`` into a file: text, hex, base64."""
    raw = value.encode()
    return {raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
            base64.urlsafe_b64encode(raw)}  # fmt: skip


def whole_tokens(values: list[str]) -> re.Pattern[bytes]:
    """``values`` as whole tokens (no letter or digit either side), as the residue scan counts
    them: an 8-digit PatientID also occurs, by chance, inside a 39-digit remapped UID."""
    alternatives = b"|".join(re.escape(v.encode()) for v in sorted(values, key=len, reverse=True))
    return re.compile(rb"(?<![0-9A-Za-z])(?:" + alternatives + rb")(?![0-9A-Za-z])")


def _pattern(wanted: Wanted) -> re.Pattern[bytes]:
    if isinstance(wanted, re.Pattern):
        return wanted
    every_form = sorted(set().union(*(forms(v) for v in wanted)), key=len, reverse=True)
    return re.compile(b"|".join(re.escape(f) for f in every_form))


def prefect_leaks(values: Wanted) -> list[str]:
    """Where Prefect holds any of ``values`` (or matches of a pattern): its API's flow runs, task runs, logs and
    artifacts, and the bytes of its SQLite database (and write-ahead log)."""
    from prefect import get_client

    from bonebase.prefect_scrub import local_sqlite_path

    pattern = _pattern(values)
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
        if pattern.search(text):
            found.append(f"API {where}")
    db = local_sqlite_path()
    assert db is not None and db.is_file(), "the test expects Prefect's SQLite database"
    for part in (db, db.with_name(db.name + "-wal")):
        if part.exists():
            if pattern.search(part.read_bytes()):
                found.append(f"file {part.name}")
    return found


def file_leaks(root: Path, values: Wanted, *, allowed: set[Path] = frozenset()) -> list[str]:
    """The files under ``root`` (but ``allowed``) whose bytes hold any of ``values``."""
    pattern = _pattern(values)
    found = []
    for path in sorted(root.rglob("*")):
        if path in allowed or path.is_symlink() or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:  # a socket or a file the embedded server holds exclusively
            continue
        if pattern.search(data):
            found.append(str(path.relative_to(root)))
    return found


def database_leaks(conn, values: Wanted) -> list[str]:
    """The tables of our database that hold any of ``values`` in any row (as text)."""
    tables = [r["tablename"] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]  # fmt: skip
    found = []
    for table in tables:
        if isinstance(values, re.Pattern):  # PostgreSQL's regular expressions lack lookbehind
            hit = any(values.search(row["row"].encode())
                      for row in conn.execute(f'SELECT t::text AS row FROM "{table}" t'))
        else:  # plain substrings: searched by the server
            hit = conn.execute(
                f'SELECT 1 FROM "{table}" t WHERE t::text LIKE ANY(%s) LIMIT 1',
                ([f"%{f.decode()}%" for v in values for f in forms(v)],),
            ).fetchone()
        if hit:
            found.append(table)
    return found
