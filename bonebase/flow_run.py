"""Flows bonebase runs in its own process: without Prefect's flow-run heartbeat.

Prefect 3.9 sends a heartbeat event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (default
180) from a thread that sleeps in steps of one second, and joins that thread when the flow run
ends: every flow run waits up to a second for it to wake up. Measured on the champion watch
(#23): 1.94 s of 5.28 s over three flow runs were that join (cProfile of
``python benchmarks/ingest.py --watch``), which is why a submission's wall times came out near
whole seconds.

Heartbeats feed Prefect's detection of "zombie" flow runs (an automation on missing heartbeats,
for runs a worker starts from a deployment). The short flows that bonebase runs in its own process,
often and with a caller waiting on them that sees a crash by itself (`bonebase submit` and the
ingest of each gateway delivery, the champion watch after it, `bonebase monitor run`), run without
the heartbeat. The rest keep it: the long ones (`retrain`, `dataset version`, where a second is
nothing and a lost run is worth detecting), and every flow that a Prefect worker runs from
prefect.yaml's deployments (the subflows such a run starts through these functions, an ingest's
watch or a delivery's ingest, go without; the parent run keeps its own). Every run keeps it when
the heartbeat frequency is set anywhere Prefect reads settings from: the environment
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` or its older name), a profile, prefect.toml or .env.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: Environment variables that, when set, keep Prefect's heartbeat on for in-process runs too.
HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@contextmanager
def in_process() -> Iterator[None]:
    """Flow runs started inside this block send no heartbeat (unless the environment asks)."""
    if any(os.environ.get(name) for name in HEARTBEAT_VARIABLES):
        yield
        return
    from prefect.context import SettingsContext, get_settings_context

    context = get_settings_context()
    settings = context.settings
    if "heartbeat_frequency" in settings.flows.model_fields_set:  # asked for, not the default
        yield
        return
    # A copy of the settings in force with that one value changed. Not temporary_settings():
    # it validates every setting again from the environment (0.1-0.2 s of CPU per call,
    # cProfile of the watch), where this is a shallow copy of two models.
    quiet = settings.model_copy(update={
        "flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
    with SettingsContext(profile=context.profile, settings=quiet):
        yield


__all__ = ["HEARTBEAT_VARIABLES", "in_process"]
