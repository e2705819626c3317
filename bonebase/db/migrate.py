"""Alembic migrations, run programmatically (no alembic.ini needed by users)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bonebase.db.engine import connect
from bonebase.errors import DatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # A creator keeps libpq URL forms (host=/socket/dir in the query) exactly as psycopg reads them.
    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool)


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = _engine(url)
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config_no_db()).get_current_head()


def _config_no_db() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def current_revision(url: str) -> str | None:
    connect(url).close()  # a clear error first if the server is unreachable
    with _engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> str | None:
    connect(url).close()
    command.upgrade(_config(url), revision)
    return current_revision(url)


def downgrade(url: str, revision: str) -> str | None:
    connect(url).close()
    command.downgrade(_config(url), revision)
    return current_revision(url)


def require_head(url: str, *, where: str = "the database") -> None:
    """Raise a one-line error when the database is not migrated to the code's schema; ``where``
    names it (which home or server) in the message."""
    current, head = current_revision(url), head_revision()
    if current != head:
        state = f"is at {current}" if current else "is empty (no bonebase schema)"
        raise DatabaseError(
            f"{where} {state}, the code needs schema {head}: run `bonebase init` to migrate"
        )
