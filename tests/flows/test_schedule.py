"""The retraining schedule on a real Prefect server (the session's test server)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bonebase.errors import ConfigError, InputError
from bonebase.release.schedule import cron_from_prefect_yaml, next_times

ROOT = Path(__file__).resolve().parents[2]


def test_cron_comes_from_prefect_yaml():
    cron, tz = cron_from_prefect_yaml(ROOT)
    assert cron == "0 3 * * 1" and tz == "UTC"


def test_prefect_yaml_without_retrain_is_a_clear_error(tmp_path):
    (tmp_path / "prefect.yaml").write_text("deployments: [{name: ingest}]\n")
    with pytest.raises(ConfigError, match="no `retrain` deployment"):
        cron_from_prefect_yaml(tmp_path)


def test_next_times_and_bad_cron():
    start = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("UTC"))  # a Monday
    assert next_times("0 3 * * 1", "UTC", 2, now=start) == [
        "2026-11-30T03:00+00:00",
        "2026-12-07T03:00+00:00",
    ]
    with pytest.raises(InputError, match="not valid"):
        next_times("61 * * * *", "UTC")


def test_schedule_needs_a_server(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bonebase.release.schedule import require_server

    with temporary_settings(updates={PREFECT_API_URL: None}):
        with pytest.raises(ConfigError, match="prefect server start"):
            require_server()


def test_enable_show_disable(prefect_harness):
    from prefect import get_client

    from bonebase.release.schedule import disable, enable, show

    state = enable(ROOT)
    assert state.active and state.cron == "0 3 * * 1" and state.work_pool == "bonebase"
    assert len(state.next_runs) == 3
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("retrain/retrain")
        assert dep.parameters["project_dir"] == str(ROOT)
        assert [s.active for s in client.read_deployment_schedules(dep.id)] == [True]

    state = disable()
    assert not state.active and state.next_runs == []
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("retrain/retrain")
        assert dep.paused
        assert [s.active for s in client.read_deployment_schedules(dep.id)] == [False]

    state = enable(ROOT, cron="30 1 * * *", timezone="Europe/Berlin")
    assert state.active and state.cron == "30 1 * * *" and state.timezone == "Europe/Berlin"
    assert show().cron == "30 1 * * *"
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("retrain/retrain")
        assert len(client.read_deployment_schedules(dep.id)) == 1  # replaced, not added


def test_every_prefect_yaml_entrypoint_is_a_flow():
    """`prefect deploy --all` imports each entrypoint: a renamed flow must not go unnoticed."""
    import importlib

    import yaml
    from prefect import Flow

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    for deployment in deployments:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, name, None), Flow), deployment["entrypoint"]
