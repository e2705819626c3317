"""What the `bonebase` sub-commands share: consoles, settings, the database URL, Prefect env."""

from __future__ import annotations

from rich.console import Console

console = Console()
err = Console(stderr=True)


def settings():
    from bonebase.config import get_settings

    return get_settings()


def db_url(*, migrated: bool = True, create: bool = False, of=None) -> str:
    """The database URL; with ``migrated`` the schema must be at head (else: run init).

    With the embedded server only ``create`` (`bonebase init`) makes a home and a database; any
    other command finding neither says which home it looked at and how to make or choose one.
    ``of``: these settings instead of the environment's (init's new home).
    """
    from bonebase.db.engine import database_url
    from bonebase.errors import DatabaseError

    s = of or settings()
    if s.database_url:
        where = "the database of DATABASE_URL"
    else:
        where = f"the embedded database of {s.describe_home()}"
        if create:
            s.ensure_home()
        elif not (s.require_home() and (s.pg_dir / "PG_VERSION").is_file()):
            raise DatabaseError(
                f"no database in {s.describe_home()}: run `bonebase init` to create it, or set "
                "BONEBASE_HOME to another home (or DATABASE_URL to a server)"
            )
    from bonebase.db.migrate import require_head

    try:
        url = database_url(s)
        if migrated:
            require_head(url, where=where)
    except DatabaseError as exc:
        if s.database_url or str(s.home) in str(exc):
            raise
        # e.g. the embedded server went away: say whose it was (its log is in HOME/pg/log)
        raise DatabaseError(f"{exc} ({where})") from None
    return url


def db_and_store():
    """(connection, object store) of the one settings object; the schema must be at head."""
    from bonebase.db.engine import connect
    from bonebase.storage import open_store

    s = settings()
    url = db_url()  # the schema at head, else: run init
    return connect(url), open_store(s.object_store_url, endpoint_url=s.s3_endpoint_url,
                                    region=s.s3_region)


def prefect_home():
    """Where Prefect keeps the flow runs of bonebase's commands: PREFECT_HOME when set, else
    BONEBASE_HOME/prefect."""
    import os
    from pathlib import Path

    return Path(os.environ.get("PREFECT_HOME") or settings().home / "prefect")


def prefect_env() -> None:
    """Embedded defaults for Prefect, set before it is imported: its state under BONEBASE_HOME,
    and time for the ephemeral server's first start (it migrates its SQLite database)."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        home = prefect_home()
        # Prefect's database holds flow-run history: readable by the owner only (#15).
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)
        os.environ.setdefault("PREFECT_HOME", str(home))
        # The temporary server's telemetry heartbeat collides with its own SQLite writes at
        # start ("database is locked" tracebacks in the output) and sends data off the machine.
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def redact(url: str) -> str:
    """A database URL or connection string with its passwords hidden, for printing."""
    from bonebase.secret_key import redact_passwords

    return redact_passwords(url)
