"""Scrub secrets out of Prefect's state: flow-run parameters written by older bonebase versions.

Before issue #15, `bonebase dataset version`, the `retrain` flow and `bonebase demo` passed the
whole Settings object to a flow, so Prefect stored the consortium key and any password of
DATABASE_URL in the flow runs' parameters (its database, UI and API). :func:`scrub` rewrites
those parameters through the Prefect API — which works whichever database the Prefect server
uses, and whatever schema its version has — and then, for the local SQLite database, VACUUMs
it: SQLite keeps the old bytes of rewritten rows in free pages and its write-ahead log.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonebase.secret_key import redact_passwords

SCRUBBED = "<scrubbed>"
#: Parameter names whose values are secrets whatever they hold.
SECRET_NAMES = re.compile(r"secret|passw|token|api_?key|credential|private", re.IGNORECASE)
PAGE = 200  # flow runs read per API call


@dataclass
class ScrubReport:
    """What :func:`scrub` did: flow runs read and rewritten, the SQLite file it compacted."""

    flow_runs: int = 0
    rewritten: list[str] = field(default_factory=list)
    vacuumed: Path | None = None


def clean(value: Any, known: Iterable[str] = ()) -> Any:
    """``value`` (parameters, as JSON-like data) with secret-named entries, the ``known``
    secret strings and URL/conninfo passwords replaced by a marker."""
    known = [k for k in known if k]
    if isinstance(value, dict):
        return {
            k: SCRUBBED if SECRET_NAMES.search(str(k)) and v is not None else clean(v, known)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean(v, known) for v in value]
    if isinstance(value, str):
        for secret in known:
            value = value.replace(secret, SCRUBBED)
        return redact_passwords(value, SCRUBBED)
    return value


def known_secrets() -> list[str]:
    """The secrets of this installation that may sit in old parameters, in the forms they were
    written: the consortium key and the database password."""
    from urllib.parse import unquote, urlsplit

    from psycopg.conninfo import conninfo_to_dict

    from bonebase.config import get_settings
    from bonebase.errors import ConfigError

    settings = get_settings()
    found = [settings.secret or ""]
    try:
        found.append(settings.consortium_secret().decode())
    except ConfigError:
        pass  # none configured (or refused in production): the name rules still apply
    url = settings.database_url or ""
    try:
        found.append(str(conninfo_to_dict(url).get("password") or ""))
    except Exception:  # noqa: BLE001 - a URL psycopg cannot parse has no password to find
        password = urlsplit(url).password if "://" in url else None
        found.append(unquote(password) if password else "")
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(*, known: Iterable[str] = (), sqlite_path: Path | None = None) -> ScrubReport:
    """Rewrite every flow run whose parameters hold a secret; then VACUUM ``sqlite_path`` (by
    default Prefect's configured SQLite database, when it is one and exists here)."""
    from prefect import get_client

    known = list(known)
    report = ScrubReport()
    with get_client(sync_client=True) as client:
        offset = 0
        while runs := client.read_flow_runs(limit=PAGE, offset=offset):
            offset += len(runs)
            report.flow_runs += len(runs)
            for run in runs:
                params = run.parameters or {}
                scrubbed = clean(params, known)
                if scrubbed != params:
                    client.update_flow_run(run.id, parameters=scrubbed)
                    report.rewritten.append(str(run.id))
    path = sqlite_path or local_sqlite_path()
    if path is not None and path.is_file():
        vacuum(path)
        report.vacuumed = path
    return report


def local_sqlite_path() -> Path | None:
    """The file of Prefect's SQLite database as configured here, or None (PostgreSQL)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    match = re.match(r"sqlite(\+\w+)?:///(?P<path>[^?]+)", text)
    return Path(match["path"]) if match else None


def vacuum(path: Path, *, attempts: int = 20) -> None:
    """Rebuild the SQLite file without free pages and empty its write-ahead log, so that the
    bytes of rewritten rows are gone from disk (retries while the Prefect server holds it);
    then leave the files readable by their owner only."""
    from bonebase.errors import BonebaseError

    for _ in range(attempts):
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("VACUUM")
            if not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                break
        except sqlite3.OperationalError:
            pass  # locked by the server's own writes: try again
        finally:
            conn.close()
        time.sleep(0.5)
    else:
        raise BonebaseError(
            f"Prefect's database {path} stays busy: stop the Prefect server and running flows, "
            "then run `bonebase db scrub-prefect` again"
        )
    # Older Prefect versions created these files world-readable.
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if part.exists():
            part.chmod(0o600)
