"""Which BONEBASE_HOME a command uses (#17 point 8): found as git finds .git, named in messages,
never created by a command that only reads state."""

import os

import pytest

from bonebase.config import Settings
from tests.unit.test_cli import assert_one_line_error, run


def _env(tmp_path, **extra):
    """No BONEBASE_HOME, no DATABASE_URL, and a user folder of the test's own (~/.bonebase)."""
    env = {k: v for k, v in os.environ.items() if k not in ("BONEBASE_HOME", "DATABASE_URL")}
    (tmp_path / "user").mkdir(exist_ok=True)
    return {**env, "HOME": str(tmp_path / "user"), "COLUMNS": "200", **extra}


def _run(*args, env, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "bonebase.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_found_in_a_parent_then_user_level_then_here(tmp_path, monkeypatch):
    monkeypatch.delenv("BONEBASE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    deep = tmp_path / "project" / "data" / "raw"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    s = Settings()
    assert (s.home, s.home_origin) == (deep / ".bonebase", "none found")
    assert "not created yet" in s.describe_home()
    (tmp_path / "user" / ".bonebase").mkdir(parents=True)
    assert Settings().home == tmp_path / "user" / ".bonebase"
    assert "user-level" in Settings().describe_home()
    (tmp_path / "project" / ".bonebase").mkdir()
    s = Settings()
    assert s.home == tmp_path / "project" / ".bonebase"
    assert s.describe_home() == f"{s.home} (found in {tmp_path / 'project'})"
    monkeypatch.setenv("BONEBASE_HOME", str(tmp_path / "elsewhere"))
    assert Settings().describe_home() == f"{tmp_path / 'elsewhere'} (set by BONEBASE_HOME)"


def test_reading_commands_outside_any_home_say_where_they_looked(tmp_path):
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    env = _env(tmp_path)
    for args in (("site", "list"), ("db", "status"), ("models", "list"), ("dataset", "list"),
                 ("db", "scrub-prefect"), ("prefect", "ui"), ("web",)):
        result = _run(*args, env=env, cwd=nowhere)
        assert_one_line_error(result, f"looked for .bonebase in {nowhere} and its parents")
        assert "bonebase init" in result.stderr and "BONEBASE_HOME" in result.stderr
        assert str(tmp_path / "user" / ".bonebase") in result.stderr
    assert list(nowhere.iterdir()) == []  # no home, no database made on the way
    missing = tmp_path / "missing-home"
    result = _run("site", "list", env={**env, "BONEBASE_HOME": str(missing)}, cwd=nowhere)
    assert_one_line_error(result, f"BONEBASE_HOME {missing} does not exist")
    assert not missing.exists()


def test_a_home_without_a_database_is_not_given_one(tmp_path):
    project = tmp_path / "project"
    (project / ".bonebase").mkdir(parents=True)
    result = _run("site", "list", env=_env(tmp_path), cwd=project)
    assert_one_line_error(result, f"no database in {project / '.bonebase'} (found in {project})")
    assert "bonebase init" in result.stderr
    assert list((project / ".bonebase").iterdir()) == []


def test_init_makes_a_project_home_that_subfolders_find(tmp_path, migrated_database):
    project = tmp_path / "project"
    (project / "data" / "raw").mkdir(parents=True)
    env = _env(tmp_path, DATABASE_URL=migrated_database)
    user_home = tmp_path / "user" / ".bonebase"
    user_home.mkdir(parents=True)  # a user-level home: init still makes the project's own
    made = _run("init", env=env, cwd=project)
    assert made.returncode == 0, made.stderr
    assert f"ready home={project / '.bonebase'} (new)" in made.stdout
    assert list(user_home.iterdir()) == []
    status = _run("db", "status", env=env, cwd=project / "data" / "raw")
    assert status.returncode == 0, status.stderr
    assert f"home     {project / '.bonebase'} (found in {project})" in status.stdout
    assert not (project / "data" / "raw" / ".bonebase").exists()
    elsewhere = _run("db", "status", env=env, cwd=tmp_path)
    assert f"home     {user_home} (the user-level home" in elsewhere.stdout


def test_schema_errors_name_the_database_they_checked(tmp_path, fresh_database):
    result = run("site", "list", env={"BONEBASE_HOME": str(tmp_path),
                                      "DATABASE_URL": fresh_database()})
    assert_one_line_error(result, "the database of DATABASE_URL is empty (no bonebase schema)")


def test_a_lost_embedded_server_is_named_by_its_home(tmp_path, monkeypatch):
    """The connection error says 'check DATABASE_URL'; with none set, it also names the home."""
    from bonebase import cli_common
    from bonebase.config import get_settings
    from bonebase.db import engine
    from bonebase.errors import DatabaseError

    home = tmp_path / "home"
    (home / "pg").mkdir(parents=True)
    (home / "pg" / "PG_VERSION").write_text("16\n")
    monkeypatch.setenv("BONEBASE_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def refused(settings):
        raise DatabaseError("cannot connect to the database (connection refused)")

    monkeypatch.setattr(engine, "database_url", refused)
    get_settings.cache_clear()
    try:
        with pytest.raises(DatabaseError, match=rf"refused\) \(the embedded database of {home} "):
            cli_common.db_url()
    finally:
        get_settings.cache_clear()
