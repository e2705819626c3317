from pathlib import Path

import pytest

from bonebase.config import DEV_SECRET_PREFIX, Settings
from bonebase.errors import ConfigError


def test_defaults_put_all_state_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("BONEBASE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.home == tmp_path / ".bonebase"
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
    good = "k" * 40
    assert Settings(home=tmp_path, env="production", secret=good).consortium_secret() == good.encode()


def test_production_never_generates_a_secret(tmp_path):
    with pytest.raises(ConfigError, match="BONEBASE_SECRET"):
        Settings(home=tmp_path, env="production").ensure_secret()


def test_unwritable_home_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        Settings(home=blocker / "home").ensure_home()
    assert Path(blocker).is_file()
