"""Shared fixtures: a real PostgreSQL and a real S3 endpoint.

The database is the server named by ``DATABASE_URL`` when set (CI sets it to the machine's
PostgreSQL); each test session creates its own database there and drops it after. With no
``DATABASE_URL`` an embedded server is started with pgserver in a temporary folder. At the end
of the session every embedded server under the session's temporary folders is stopped (the
embedded server outlives the process that starts it: tests/plugins/postgres.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.plugins.postgres import stop_servers_under
from tests.plugins.s3 import *  # noqa: F403  (moto S3 server fixtures)
from tests.worlds import (  # noqa: F401  (session fixtures shared by the suites)
    seeded_copy,
    seeded_template,
    server,
    serving_synth,
    trained,
    truncate,
)

# Tests read English messages (#25 translates them by locale): a developer's or CI machine with a
# Chinese locale must not turn them red. Tests of the Chinese output set --lang or the variables
# themselves, for their own process.
for _var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "BONEBASE_LANG"):
    os.environ.pop(_var, None)
os.environ["LANG"] = "C.UTF-8"

# The folders world_traversable_tmp made in this session: embedded servers under them are stopped
# at its end.
SESSION_ROOTS: list[Path] = []


def world_traversable_tmp(prefix: str) -> Path:
    """A temp folder the embedded server can reach: as root, pgserver runs postgres as the
    'pgserver' user, which cannot enter pytest's private (0700) temp folders."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    SESSION_ROOTS.append(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _stop_embedded_servers(tmp_path_factory) -> Iterator[None]:
    """Set up first, torn down last: stop what the tests' embedded homes left running."""
    yield
    left = stop_servers_under([*SESSION_ROOTS, tmp_path_factory.getbasetemp()])
    if left:
        print(f"\nstopped {len(left)} embedded PostgreSQL server(s) that tests left running: "
              + ", ".join(map(str, left)))


def _server_url(tmp_root: Path) -> tuple[str, bool]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, False
    from bonebase.db.engine import embedded_url

    return embedded_url(tmp_root / "pg"), True


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Iterator[str]:
    """URL of a server where tests may create databases."""
    root = world_traversable_tmp("bonebase-test-pg-")
    url, embedded = _server_url(root)
    yield url
    if embedded:
        # Not pgserver's cleanup(): get_server returns the instance embedded_url made, whose
        # cleanup mode is None (bonebase keeps its server running), so it stopped nothing.
        from bonebase.db.engine import stop_embedded

        stop_embedded(root / "pg")
    shutil.rmtree(root, ignore_errors=True)


def _with_database(server_url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def fresh_database(pg_server) -> Iterator:
    """A factory of databases on the test server, dropped at the end of the session: empty, or
    ``make(template=url)`` a copy of the database at ``url`` (nobody may be connected to it)."""
    from psycopg.conninfo import conninfo_to_dict

    made: list[str] = []

    def make(template: str | None = None) -> str:
        name = f"bonebase_test_{uuid.uuid4().hex[:10]}"
        source = conninfo_to_dict(template)["dbname"] if template else None
        with psycopg.connect(pg_server, autocommit=True) as conn:
            if source:  # a pool left open by the code that built it would refuse the copy
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = %s AND pid <> pg_backend_pid()", (source,))
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{source}"' if source else ""))
        made.append(name)
        return _with_database(pg_server, name)

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_database(fresh_database) -> str:
    from bonebase.db.migrate import upgrade

    url = fresh_database()
    upgrade(url)
    return url


@pytest.fixture
def db_url(migrated_database) -> str:
    """A migrated database, emptied before each test."""
    truncate(migrated_database)
    return migrated_database


@pytest.fixture
def db(db_url) -> Iterator[psycopg.Connection]:
    from bonebase.db.engine import connect

    with connect(db_url) as conn:
        yield conn


@pytest.fixture
def bonebase_env(tmp_path, monkeypatch, migrated_database) -> Path:
    """Environment for a CLI run in a fresh BONEBASE_HOME against the test database."""
    home = tmp_path / "home"
    monkeypatch.setenv("BONEBASE_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", migrated_database)
    from bonebase.config import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the session (its start migrates SQLite: seconds, not per test)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
