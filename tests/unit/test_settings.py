from pathlib import Path

import pytest

from bonebase.config import DEV_SECRET_PREFIX, Settings
from bonebase.errors import ConfigError


def test_defaults_put_all_state_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("BONEBASE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no user-level ~/.bonebase
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.home == tmp_path / ".bonebase"  # where `bonebase init` makes one (tests/unit/test_home.py)
    assert s.pg_dir == s.home / "pg"
    assert s.object_store_url == str(s.home / "objects")
    assert s.database_url is None


def test_env_vars_are_read(tmp_path, monkeypatch):
    monkeypatch.setenv("BONEBASE_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("BONEBASE_STORAGE_URL", "s3://bucket/prefix")
    s = Settings()
    assert s.home == tmp_path / "h"
    assert s.database_url == "postgresql://u@db/x"
    assert s.object_store_url == "s3://bucket/prefix"


def test_secret_generated_once_and_reused(tmp_path):
    s = Settings(home=tmp_path)
    s.ensure_home()
    assert s.ensure_secret() is True
    first = s.consortium_secret()
    assert first.startswith(DEV_SECRET_PREFIX.encode()) and len(first) > 40
    assert s.ensure_secret() is False
    assert Settings(home=tmp_path).consortium_secret() == first
    assert oct(s.secret_file.stat().st_mode & 0o777) == "0o600"


def test_missing_secret_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="bonebase init"):
        Settings(home=tmp_path).consortium_secret()


def test_production_refuses_development_secret(tmp_path):
    dev = Settings(home=tmp_path)
    dev.ensure_home()
    dev.ensure_secret()
    with pytest.raises(ConfigError, match="production"):
        Settings(home=tmp_path, env="production").consortium_secret()
    with pytest.raises(ConfigError, match="32"):
        Settings(home=tmp_path, env="production", secret="short").consortium_secret()
    with pytest.raises(ConfigError, match="predictable"):
        Settings(home=tmp_path, env="production", secret="k" * 40).consortium_secret()
    good = "q7Hc2pXw9LmN4vBt8RzK1sYd6FgJ3aEu5iOo0WbP"  # 40 characters, none repeated in a pattern
    assert Settings(home=tmp_path, env="production", secret=good).consortium_secret() == good.encode()


def test_environ_round_trips_through_the_environment(tmp_path, monkeypatch):
    s = Settings(home=tmp_path, database_url="postgresql://u@db/x", secret="s" * 40, env="test")
    for name, value in s.environ().items():
        monkeypatch.setenv(name, value)
    assert Settings() == s


def test_production_never_generates_a_secret(tmp_path):
    with pytest.raises(ConfigError, match="BONEBASE_SECRET"):
        Settings(home=tmp_path, env="production").ensure_secret()


def test_unwritable_home_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        Settings(home=blocker / "home").ensure_home()
    assert Path(blocker).is_file()


def test_task_runner_defaults_to_the_process_pool(tmp_path, monkeypatch):
    for name in ("BONEBASE_TASK_RUNNER", "BONEBASE_DASK_ADDRESS", "BONEBASE_INGEST_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(home=tmp_path)
    assert (s.task_runner, s.dask_address, s.ingest_workers) == ("process", None, None)


def test_dask_settings_are_read_and_reach_the_runner(tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bonebase.ingest import runner

    monkeypatch.setenv("BONEBASE_TASK_RUNNER", "dask")
    monkeypatch.setenv("BONEBASE_INGEST_WORKERS", "3")
    sizes = []
    monkeypatch.setattr(runner, "_local_cluster", lambda n, url, env: sizes.append(n))
    local = runner._dask_runner(Settings(home=tmp_path))
    assert local.address is None and sizes == [3]
    monkeypatch.setenv("BONEBASE_DASK_ADDRESS", " tcp://scheduler:8786 ")
    with temporary_settings({PREFECT_API_URL: "http://prefect.example:4200/api"}):
        remote = runner._dask_runner(Settings(home=tmp_path))
    assert remote.address == "tcp://scheduler:8786"
    # A cluster elsewhere cannot reach a temporary Prefect server on this machine.
    with temporary_settings({PREFECT_API_URL: None}), pytest.raises(ConfigError,
                                                                    match="PREFECT_API_URL"):
        runner._dask_runner(Settings(home=tmp_path))


@pytest.mark.parametrize(("env", "match"), [
    ({"BONEBASE_TASK_RUNNER": "daks"}, "BONEBASE_TASK_RUNNER='daks'.*'process' or 'dask'"),
    ({"BONEBASE_INGEST_WORKERS": "0"}, "BONEBASE_INGEST_WORKERS='0'.*greater than or equal to 1"),
    ({"BONEBASE_TASK_RUNNER": "dask", "BONEBASE_DASK_ADDRESS": "scheduler:8786"},
     "tcp://HOST:8786"),
    ({"BONEBASE_DASK_ADDRESS": "tcp://scheduler:8786"}, "set BONEBASE_TASK_RUNNER=dask"),
])
def test_bad_scale_out_settings_name_the_variable_and_fix(tmp_path, monkeypatch, env, match):
    from bonebase.config import get_settings

    monkeypatch.setenv("BONEBASE_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=match):
            get_settings()
    finally:
        get_settings.cache_clear()
