"""One run of `make demo`'s story, smaller, shared by the tests that need it: the demo's own checks
(tests/e2e/test_demo.py) and the guide walk (tests/e2e/test_guides.py), which follows
docs/stewards.md and docs/mlops.md after the demo in the same home, as a user would.

The story runs twice (the second time changes nothing); what the tests check of the runs
themselves (outputs, printed lines, the console's log, the database right after) is kept here,
since the walk changes the home afterwards."""

from __future__ import annotations

import io
import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bonebase.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DemoRun:
    """The demo's world and what it did."""

    checkout: Path  # where `make demo` ran: a copy of this checkout (its own git repository)
    settings: Settings  # the home is checkout/.bonebase, the default of a user in the checkout
    password: str  # the DATABASE_URL's password (the test server ignores it): for the scans
    environ: dict[str, str]  # the demo's BONEBASE_* and DATABASE_URL
    out: dict = field(default_factory=dict)  # run_demo's answer, first run
    again: dict = field(default_factory=dict)  # and second run
    lines: list[str] = field(default_factory=list)  # what the first run printed
    again_lines: list[str] = field(default_factory=list)  # and the second
    console: str = ""  # the log lines that reached a console handler during both runs
    db: dict = field(default_factory=dict)  # the database right after both runs


def _snapshot(url: str) -> dict:
    from bonebase.db.engine import connect

    with connect(url) as conn:
        return {
            "models": {m["id"]: dict(m) for m in conn.execute("SELECT * FROM models").fetchall()},
            "approvals": [dict(r) for r in conn.execute("SELECT * FROM approvals").fetchall()],
            "deployments": conn.execute("SELECT count(*) AS n FROM deployments").fetchone()["n"],
            "dataset_versions": conn.execute(
                "SELECT count(*) AS n FROM dataset_versions"
            ).fetchone()["n"],
            "sites": {r["code"] for r in conn.execute("SELECT code FROM sites").fetchall()},
        }


@pytest.fixture(scope="session")
def demo_run(fresh_database, tmp_path_factory, prefect_harness) -> DemoRun:
    """`bonebase demo`'s story (run_demo, in this process: Prefect's API is the session's test
    server, which the scans read): 3 + 1 hospitals of 22 cases, 64 px, one epoch, every step
    real (PostgreSQL, Prefect flows, git + DVC, training, BentoML serve over HTTP). The
    consortium key and a DATABASE_URL password are unique values for the secrets scan. The
    environment is the demo's only while it runs."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from bonebase.config import get_settings
    from bonebase.demo_cli import DemoConfig, run_demo
    from tests.e2e.guide_walk import free_port
    from tests.flows.world import copy_project

    root = tmp_path_factory.mktemp("demo")
    checkout = copy_project(root / "checkout", None)
    password = "pw" + secrets.token_hex(12)
    url = make_conninfo(**{**conninfo_to_dict(fresh_database()), "password": password})
    settings = Settings(home=checkout / ".bonebase", database_url=url,
                        secret="demo-" + secrets.token_urlsafe(32), env="test")  # fmt: skip
    cfg = DemoConfig(sites=3, cases_per_site=22, seed=3, image_size=64, export_size=64,
                     epochs=1, bootstrap=50, port=free_port(), keep_serving=False)  # fmt: skip
    run = DemoRun(checkout=checkout, settings=settings, password=password,
                  environ=settings.environ())  # fmt: skip
    console = io.StringIO()
    handler = logging.StreamHandler(console)  # beside Prefect's console handler, as it is
    handler.setFormatter(logging.Formatter("%(name)s | %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in run.environ.items():
                mp.setenv(name, value)
            get_settings.cache_clear()
            run.out = run_demo(repo=checkout, cfg=cfg, say=run.lines.append)
            run.again = run_demo(repo=checkout, cfg=cfg, say=run.again_lines.append)
    finally:
        logging.getLogger().removeHandler(handler)
        get_settings.cache_clear()
    run.console = console.getvalue()
    run.db = _snapshot(url)
    yield run
    shutil.rmtree(root, ignore_errors=True)
