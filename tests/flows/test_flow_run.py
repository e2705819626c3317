"""bonebase.flow_run: the short in-process flows run without Prefect's heartbeat thread (whose
join made every flow run wait up to a second), unless the environment asks for it."""

from __future__ import annotations

import pytest
from prefect import flow

from bonebase.flow_run import in_process


@flow(name="heartbeat-probe")
def _probe() -> str:
    return "done"


@pytest.fixture()
def heartbeats(monkeypatch, prefect_harness) -> list[int]:
    """Heartbeats the flow engine emits (the first goes out as soon as the run starts)."""
    from prefect import flow_engine

    sent: list[int] = []
    real = flow_engine.FlowRunEngine._emit_flow_run_heartbeat

    def counted(self, *args, **kwargs):
        sent.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(flow_engine.FlowRunEngine, "_emit_flow_run_heartbeat", counted)
    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    return sent


def test_a_flow_run_in_process_sends_no_heartbeat(heartbeats):
    assert _probe() == "done"
    assert heartbeats, "Prefect's default sends a heartbeat: this probe would prove nothing"
    heartbeats.clear()
    with in_process():
        assert _probe() == "done"
    assert heartbeats == []


def test_the_environment_keeps_the_heartbeat(heartbeats, monkeypatch):
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    with in_process():
        assert _probe() == "done"
    assert heartbeats


def test_the_setting_is_restored_after_the_block():
    from prefect.settings import get_current_settings

    before = get_current_settings().flows.heartbeat_frequency
    with in_process():
        pass
    assert get_current_settings().flows.heartbeat_frequency == before


def test_a_heartbeat_set_in_prefects_settings_is_kept(heartbeats):
    # A profile, prefect.toml or .env sets it as a value, not through the environment.
    from prefect.context import SettingsContext, get_settings_context

    context = get_settings_context()
    asked = context.settings.model_copy(update={"flows": type(context.settings.flows)(
        heartbeat_frequency=60)})
    with SettingsContext(profile=context.profile, settings=asked), in_process():
        assert _probe() == "done"
    assert heartbeats
