"""Find or start the database and open connections to it.

With ``DATABASE_URL`` unset an embedded PostgreSQL 16 is started with the ``pgserver`` package under
``BONEBASE_HOME/pg``; it keeps running after the process exits so later commands reuse it (pgserver
finds a running server by its data folder), and ``bonebase db stop`` stops it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from bonebase.config import Settings
from bonebase.errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

EMBEDDED_DB = "bonebase"
# Unix sockets live inside the data folder; their path is limited to 107 bytes by the kernel.
_MAX_SOCKET_DIR = 90


def embedded_url(pg_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``pg_dir`` and return a URL to our database."""
    if len(str(pg_dir)) > _MAX_SOCKET_DIR:
        raise ConfigError(
            f"BONEBASE_HOME path is too long for PostgreSQL's socket ({pg_dir}); "
            "use a shorter BONEBASE_HOME or set DATABASE_URL"
        )
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
            warnings.simplefilter("ignore")
            import pgserver  # slow-ish import: only when the embedded server is wanted
    except ImportError:  # pragma: no cover - a broken install
        raise ConfigError("the pgserver package is missing: reinstall bonebase") from None
    try:
        pg_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pg_dir, cleanup_mode=None)
    except Exception as exc:  # pgserver raises plain exceptions with the server log
        raise DatabaseError(
            f"the embedded PostgreSQL in {pg_dir} did not start ({str(exc).splitlines()[0]}); "
            f"see {pg_dir / 'log'}, or set DATABASE_URL to use another server"
        ) from None
    admin = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DB,)).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DB}"')
    return server.get_uri(EMBEDDED_DB)


def stop_embedded(pg_dir: Path) -> bool:
    """Stop the embedded server whose data folder is ``pg_dir`` (fast shutdown: sessions are
    closed, nothing is lost); False when none runs there."""
    import os
    import shlex
    import subprocess

    if not (pg_dir / "postmaster.pid").exists():
        return False
    import pgserver

    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    cmd = [str(pg_ctl), "-D", str(pg_dir), "stop", "-m", "fast", "-w"]
    owner = pg_dir.owner()
    if os.geteuid() == 0 and owner != "root":  # as root, pgserver runs postgres as its own user
        cmd = ["su", owner, "-s", "/bin/sh", "-c", shlex.join(cmd)]
    return subprocess.run(cmd, check=False, capture_output=True, timeout=60).returncode == 0


def database_url(settings: Settings) -> str:
    """The URL to use: ``DATABASE_URL`` if set, else the embedded server's (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return embedded_url(settings.pg_dir)


def _describe(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def connect(url: str, *, autocommit: bool = False, timeout: int = 5) -> psycopg.Connection:
    """Open one connection (rows as dicts), with a one-line error when the server is unreachable."""
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, connect_timeout=timeout)
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to the database ({_describe(exc)}); check DATABASE_URL, "
            "or unset it to use the embedded server"
        ) from None


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection]:
    """A connection inside one transaction, committed on success, rolled back on error."""
    with connect(url) as conn, conn.transaction():
        yield conn


def make_pool(url: str, *, min_size: int = 1, max_size: int = 8):
    """A psycopg_pool.ConnectionPool over ``url`` (dict rows); open, caller closes."""
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        url, min_size=min_size, max_size=max_size, kwargs={"row_factory": dict_row}, open=False
    )
    try:
        pool.open(wait=True, timeout=10)
    except Exception as exc:
        pool.close()
        raise DatabaseError(f"cannot open a connection pool ({_describe(exc)}); check DATABASE_URL") from None
    return pool
