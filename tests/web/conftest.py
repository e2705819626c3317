"""Fixtures of the web tests: a seeded database, users of every role, an app and sign-in."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from tests.web.seed import SECRET, seed

PASSWORD = "correct horse battery"
USERS = {"vera": "viewer", "rhea": "researcher", "stan": "steward", "ada": "admin"}


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("web-synth") / "consortium"
    generate(out, sites=2, cases_per_site=22, seed=5, workers=1)
    return out


def _truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'").fetchall()]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="module")
def seeded(migrated_database, synth_root, tmp_path_factory) -> dict:
    """The synthetic consortium in an emptied database and a local object store, with users."""
    from bonebase.db.engine import connect
    from bonebase.db.users import add_user
    from bonebase.storage import LocalStore

    _truncate(migrated_database)
    store = LocalStore(tmp_path_factory.mktemp("web-objects"))
    with connect(migrated_database) as conn:
        cases = seed(conn, store, synth_root)
        steward_site = sorted(cases)[0]
        for name, role in USERS.items():
            add_user(conn, username=name, role=role, password=PASSWORD,
                     site=steward_site if role == "steward" else None, actor="test")
        conn.commit()
    return {"url": migrated_database, "store": store, "cases": cases,
            "steward_site": steward_site, "other_site": sorted(cases)[1]}


def make_app(seeded: dict, **web):
    from web.app import create_app
    from web.settings import WebSettings

    return create_app(db_url=seeded["url"], store=seeded["store"], secret=SECRET,
                      web=WebSettings(**web), pool_size=2)


@pytest.fixture
def app_client(seeded):
    """A TestClient factory over the seeded database: ``app_client(open_data=True, ...)``;
    ``address=`` is the client's IP address as the app sees it (sign-in throttling is per address)."""
    from fastapi.testclient import TestClient

    clients = []

    def make(*, address: str = "testclient", **web):
        client = TestClient(make_app(seeded, **web), follow_redirects=False,
                            client=(address, 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client, username: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "next": "/cases", "csrf_token": csrf_of(page.text)})
