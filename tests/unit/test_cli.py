"""The CLI as a person runs it: a subprocess, exit codes, one-line errors and no tracebacks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bonebase.cli", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=120)


def assert_one_line_error(result, needle):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("init", "site", "synth", "db", "reader-study"):
        assert command in result.stdout


@pytest.fixture
def cli_env(tmp_path, migrated_database):
    return {"BONEBASE_HOME": str(tmp_path / "home"), "DATABASE_URL": migrated_database,
            "COLUMNS": "200"}


def test_init_twice_and_site_registry(cli_env, db):
    first = run("init", env=cli_env)
    assert first.returncode == 0, first.stderr
    assert "generated" in first.stdout
    second = run("init", env=cli_env)
    assert second.returncode == 0 and "present" in second.stdout
    added = run("site", "add", "HX", "--name", "Hospital X", "--country", "CN", env=cli_env)
    assert added.returncode == 0, added.stderr
    listed = run("site", "list", "--json", env=cli_env)
    assert '"code": "HX"' in listed.stdout
    shown = run("site", "show", "HX", env=cli_env)
    assert "Hospital X" in shown.stdout and "site.add" in shown.stdout


def test_bad_code_duplicate_and_missing_site(cli_env, db):
    assert_one_line_error(run("site", "add", "hx", "--name", "X", env=cli_env), "did you mean 'HX'")
    assert run("site", "add", "HX", "--name", "X", env=cli_env).returncode == 0
    assert_one_line_error(run("site", "add", "HX", "--name", "Y", env=cli_env), "already exists")
    assert_one_line_error(run("site", "show", "ZZ", env=cli_env), "no site 'ZZ'")


def test_unreachable_database_url(tmp_path):
    env = {"BONEBASE_HOME": str(tmp_path), "DATABASE_URL": "postgresql://x@127.0.0.1:1/nope"}
    result = run("site", "list", env=env)
    assert_one_line_error(result, "cannot connect to the database")
    assert result.returncode == 3


def test_unwritable_home(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("init", env={"BONEBASE_HOME": str(blocker / "home")})
    assert_one_line_error(result, "not writable")
    assert result.returncode == 2


def test_unmigrated_database_says_run_init(tmp_path, fresh_database):
    result = run("site", "list", env={"BONEBASE_HOME": str(tmp_path),
                                      "DATABASE_URL": fresh_database()})
    assert_one_line_error(result, "bonebase init")


def test_downgrade_needs_confirmation(cli_env):
    assert_one_line_error(run("db", "downgrade", "base", env=cli_env), "--yes")


def test_site_import_is_idempotent(cli_env, db, tmp_path):
    path = tmp_path / "sites.json"
    path.write_text('[{"code": "HX", "name": "H X", "country": "CN"}, {"code": "BJ", "name": "B J"}]')
    first = run("site", "import", str(path), env=cli_env)
    assert first.returncode == 0, first.stderr
    second = run("site", "import", str(path), env=cli_env)
    assert second.returncode == 0 and second.stdout.count("exists, kept") == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(run("site", "import", str(bad), env=cli_env), "expected a JSON list")


def test_models_list_is_readable_at_80_columns(cli_env, db):
    from bonebase.db import models as q

    for n, dataset in ((1, "v3"), (2, "3f9a1c2e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f")):
        q.insert_model(db, task="benign_vs_malignant", arch="densenet121", checkpoint_key=f"k{n}",
                       checkpoint_sha256=str(n) * 64, metrics={"test": {"auc": 0.8123}},
                       report_key=None, dataset_version=dataset,
                       code_revision="0123456789abcdef", params_hash=None, threshold=None,
                       created_by="ml-eng")
    db.commit()
    listed = run("models", "list", env={**cli_env, "COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.strip()]
    assert len(lines) == 4 and max(map(len, lines)) <= 80, listed.stdout  # header, rule, 2 rows
    for row in lines[2:]:  # each model one line, nothing cut: "benign_…" before
        assert "…" not in row
        assert {"benign_vs_malignant", "candidate", "0.812"} <= set(row.split())
    assert "3f9a1c2e4b5d " in lines[2] + " "
    wide = run("models", "list", "--wide", env={**cli_env, "COLUMNS": "120"})
    assert {"densenet121", "0123456789ab", "ml-eng"} <= set(wide.stdout.split())


def test_error_lines_print_brackets_as_written(tmp_path):
    """A message quoting a value such as '[redacted]' or '[bold]' is text, not rich markup."""
    env = {"BONEBASE_HOME": str(tmp_path), "DATABASE_URL": "postgresql://x@127.0.0.1:1/nope"}
    assert_one_line_error(run("site", "add", "[bold]", "--name", "X", env=env), "'[bold]'")


def test_release_commands_default_to_the_project_they_run_in(tmp_path, monkeypatch):
    from bonebase.release.cli import _local_data
    from bonebase.release.schedule_cli import _project
    from flows.retrain import DEFAULT_PROJECT

    monkeypatch.chdir(tmp_path)
    assert _local_data() is None and _project(None) == DEFAULT_PROJECT.resolve()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "split.csv").write_text("image_id,split\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert _local_data() == Path("data") and _project(None) == tmp_path.resolve()
    assert _project(tmp_path / "other") == (tmp_path / "other").resolve()  # --project wins
