"""The consortium key and database passwords under attack (#15 points 1-2), with real Prefect
flows on the session's Prefect server and a real PostgreSQL: whoever reads Prefect's API or its
database file must find neither; old state holding them is scrubbed; the key file is private
from its first byte and production refuses guessable keys."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from bonebase import secret_key
from bonebase.config import Settings, get_settings
from bonebase.errors import ConfigError
from tests.security.leaks import prefect_leaks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def planted(db_url, tmp_path, monkeypatch, prefect_harness) -> dict:
    """An environment whose consortium key and DATABASE_URL password are fresh, unique values
    (the test server trusts local connections: the planted password is accepted and ignored)."""
    from bonebase.db.migrate import upgrade

    upgrade(db_url)  # at the head of whatever migrations the checkout holds now
    key = "planted-" + secrets.token_urlsafe(32)
    password = "pw" + secrets.token_hex(12)
    url = make_conninfo(**{**conninfo_to_dict(db_url), "password": password})
    for name, value in {"BONEBASE_HOME": str(tmp_path / "home"), "DATABASE_URL": url,
                        "BONEBASE_SECRET": key, "BONEBASE_ENV": "test",
                        "PREFECT_HOME": str(tmp_path / "prefect")}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield {"key": key, "password": password, "url": url}
    get_settings.cache_clear()


# -- point 1: no secret is a flow or task parameter ------------------------------------------
def test_dataset_version_command_leaves_no_secret_in_prefect(planted):
    from prefect.settings import get_current_settings

    # The real command in its own process, reporting to the session's Prefect server.
    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "bonebase.cli", "dataset", "version",
         "--params", str(ROOT / "params.yaml")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dataset version" in out.stdout
    for value in (planted["key"], planted["password"]):
        assert value not in out.stdout + out.stderr  # nor in the command's output and log lines
    assert prefect_leaks([planted["key"], planted["password"]]) == []


def test_retrain_flow_and_its_subflow_leave_no_secret_in_prefect(planted, tmp_path):
    import shutil

    from bonebase.release.retrain import PipelineError
    from flows.retrain import retrain_flow

    # A project with the pipeline's recipe but no DVC repository, on an empty database: the
    # version-dataset subflow cuts an empty version, the check-out task runs, and `dvc repro`
    # fails - every flow and task of a retraining run is then in Prefect's state.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    with pytest.raises(PipelineError):
        retrain_flow("params.yaml", str(project))
    assert prefect_leaks([planted["key"], planted["password"]]) == []


def test_no_flow_or_task_signature_takes_a_secret():
    """Every flow and task of the flows/ package: no parameter named or typed as a secret."""
    import importlib
    import inspect
    import pkgutil

    from prefect import Flow, Task

    import flows

    suspicious = ("settings", "secret", "password", "database_url", "url", "token")
    checked = []
    for info in pkgutil.iter_modules(flows.__path__):
        module = importlib.import_module(f"flows.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, Flow | Task) and obj.fn.__module__ == module.__name__:
                params = inspect.signature(obj.fn).parameters.values()
                bad = [p.name for p in params
                       if p.name in suspicious or "Settings" in str(p.annotation)]  # fmt: skip
                assert bad == [], f"{module.__name__}.{name} takes {bad}"
                checked.append(name)
    assert {"version_dataset_flow", "retrain_flow", "cut_version", "check_out"} <= set(checked)


def test_scrub_prefect_rewrites_old_flow_runs_that_hold_secrets(planted):
    from prefect import flow

    from bonebase.cli import app

    # State written the old way: a flow given the whole Settings, one given the key and a URL.
    @flow(name="old-version-dataset")
    def old_style(params_path: str, settings: Settings | None = None) -> int:
        return 1

    @flow(name="old-secret-params")
    def old_params(secret: str, url: str) -> int:
        return 2

    old_style("params.yaml", settings=get_settings())
    old_params(planted["key"], f"postgresql://bb:{planted['password']}@db.example/x")
    assert prefect_leaks([planted["key"], planted["password"]])  # the state to scrub

    result = CliRunner().invoke(app, ["db", "scrub-prefect"])
    assert result.exit_code == 0, result.output
    assert "rewritten" in result.output and planted["key"] not in result.output
    assert prefect_leaks([planted["key"], planted["password"]]) == []

    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(
            name=FlowFilterName(any_=["old-version-dataset", "old-secret-params"])))  # fmt: skip
    kept = {k: v for run in runs for k, v in run.parameters.items()}
    assert kept["params_path"] == "params.yaml"  # history is kept, only secrets go
    assert kept["secret"] == "<scrubbed>" and kept["url"].startswith("postgresql://bb:")


def test_printed_settings_show_neither_key_nor_password(tmp_path):
    s = Settings(home=tmp_path, secret="k3y-" + "x1y2z3" * 6, database_url="postgresql://u:pw9@h/d")
    assert "k3y-" not in repr(s) + str(s) and "pw9" not in repr(s) + str(s)


# -- point 2: the key file and the key's strength ------------------------------------------
def test_key_file_is_private_from_creation(tmp_path, monkeypatch):
    """With umask 0 and no chmod afterwards, the file must already be created 0600: a file
    created world-readable and chmod-ed later can be opened by another user in between."""
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0)
    try:
        settings = Settings(home=tmp_path)
        assert settings.ensure_secret() is True
    finally:
        os.umask(old)
    assert oct(settings.secret_file.stat().st_mode & 0o777) == "0o600"
    # A file planted in its place (a link an attacker made) is neither followed nor replaced.
    other = tmp_path / "h2"
    other.mkdir()
    (other / "secret.key").symlink_to(tmp_path / "elsewhere")
    assert Settings(home=other).ensure_secret() is False
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("weak", [" " * 35, "a" * 36, "ab" * 18, "0123456789abcdef" * 2,
                                  "  short-key-padded-with-spaces   "])  # fmt: skip
def test_production_refuses_guessable_keys(tmp_path, weak):
    with pytest.raises(ConfigError) as caught:
        Settings(home=tmp_path, env="production", secret=weak).consortium_secret()
    message = str(caught.value)
    assert "\n" not in message and "secret generate" in message and "token_urlsafe" in message
    assert weak.strip() not in message or not weak.strip()


def test_production_accepts_generated_keys(tmp_path):
    for key in (secret_key.generate(), secrets.token_hex(16), secrets.token_urlsafe(24)):
        assert Settings(home=tmp_path, env="production", secret=key).consortium_secret() == (
            key.encode()
        )


def test_cli_refuses_a_weak_key_in_one_line_without_echoing_it(tmp_path):
    weak = "a" * 36
    env = {**os.environ, "BONEBASE_HOME": str(tmp_path), "BONEBASE_ENV": "production",
           "BONEBASE_SECRET": weak, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    out = subprocess.run([sys.executable, "-m", "bonebase.cli", "init"], capture_output=True,
                         text=True, env=env, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert weak not in out.stderr + out.stdout and "secret generate" in out.stderr
    made = subprocess.run([sys.executable, "-m", "bonebase.cli", "secret", "generate"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert made.returncode == 0 and secret_key.weakness(made.stdout.strip()) is None


@pytest.mark.parametrize("url", [
    "postgresql://bb:pw-9x@db.example/bonebase",
    "host=db.example password=pw-9x dbname=bonebase",
    "host=db.example password='pw-9x' dbname=bonebase",
    "postgresql://bb@db.example/bonebase?password=pw-9x&sslmode=require",
])  # fmt: skip
def test_passwords_are_redacted_in_every_url_form(url):
    from bonebase.secret_key import redact_passwords

    shown = redact_passwords(url)
    assert "pw-9x" not in shown and "db.example" in shown and "***" in shown
