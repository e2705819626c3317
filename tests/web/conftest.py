"""Fixtures of the web tests: a seeded database, users of every role, an app and sign-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.seed import SECRET
from tests.worlds import PASSWORD, USERS, truncate

__all__ = ["PASSWORD", "SECRET", "USERS", "app_client", "csrf_of", "make_app", "seeded",
           "sign_in", "synth_root"]
_truncate = truncate  # the name test_quarantine imports


@pytest.fixture(scope="session")
def synth_root(serving_synth) -> Path:
    """The consortium in the web database: the served model's (tests/worlds.py), so every web
    module's database is a copy of one seeded template."""
    return serving_synth


@pytest.fixture(scope="module")
def seeded(seeded_copy, synth_root) -> dict:
    """The synthetic consortium in a database and a local object store of this module's own
    (copies of the session's seeded template, tests/worlds.py), with users of every role."""
    return seeded_copy(synth_root)


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
