"""The retraining schedule: a Prefect deployment of flows/retrain.py with a cron schedule.

Prefect's temporary (ephemeral) server cannot run schedules, so these functions need a Prefect
server (``PREFECT_API_URL``): ``prefect server start`` and a worker on the process pool
(``prefect worker start --pool bonebase``) run the deployment at its times. The cron comes
from ``prefect.yaml`` (the ``retrain`` deployment) unless given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bonebase.errors import ConfigError, InputError, NotFoundError

FLOW = "retrain"
DEPLOYMENT = "retrain"
POOL = "bonebase"
ENTRYPOINT = "flows/retrain.py:retrain_flow"


@dataclass
class ScheduleState:
    """What `bonebase schedule show` prints."""

    deployment: str
    cron: str | None
    timezone: str
    active: bool
    work_pool: str | None
    next_runs: list[str] = field(default_factory=list)
    recent_runs: list[dict] = field(default_factory=list)


def require_server() -> str:
    """The Prefect API URL; a clear error when none is configured."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(
            "schedules need a Prefect server (the temporary one cannot run them): start one "
            "with `bonebase prefect ui` (Prefect's server on this home's flow runs; or `prefect "
            "server start`), set PREFECT_API_URL=http://127.0.0.1:4200/api, and "
            f"start a worker with `prefect worker start --pool {POOL}` (docs/mlops.md)"
        )
    return url


def cron_from_prefect_yaml(project_dir: Path) -> tuple[str, str]:
    """(cron, timezone) of the `retrain` deployment in ``project_dir/prefect.yaml``."""
    path = project_dir / "prefect.yaml"
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); pass --cron or fix prefect.yaml") from None
    for dep in spec.get("deployments") or []:
        if dep.get("name") == DEPLOYMENT:
            for sched in dep.get("schedules") or []:
                if sched.get("cron"):
                    return str(sched["cron"]), str(sched.get("timezone") or "UTC")
    raise ConfigError(f"{path}: no `{DEPLOYMENT}` deployment with a cron schedule; pass --cron")


def next_times(cron: str, timezone: str, n: int = 3, *, now: datetime | None = None) -> list[str]:
    """The next ``n`` times ``cron`` fires, in ``timezone`` (ISO 8601)."""
    from cronsim import CronSim, CronSimError

    tz = ZoneInfo(timezone)
    try:
        it = CronSim(cron, now or datetime.now(tz))
    except CronSimError as exc:
        raise InputError(
            f"cron {cron!r} is not valid ({exc}); e.g. '0 3 * * 1' = Mondays 03:00"
        ) from None
    return [next(it).isoformat(timespec="minutes") for _ in range(n)]


def _ensure_pool(client, name: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )


def _deployment(client):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{FLOW}/{DEPLOYMENT}")
    except ObjectNotFound:
        return None


def enable(
    project_dir: Path,
    *,
    cron: str | None = None,
    timezone: str | None = None,
    pool: str = POOL,
    params_path: str = "params.yaml",
) -> ScheduleState:
    """Create or update the `retrain/retrain` deployment with an active cron schedule."""
    from prefect import flow, get_client
    from prefect.client.schemas.schedules import CronSchedule

    require_server()
    project_dir = Path(project_dir).resolve()
    if not (project_dir / ENTRYPOINT.split(":")[0]).is_file():
        raise ConfigError(f"{project_dir} has no {ENTRYPOINT.split(':')[0]}; pass --project")
    if cron is None:
        cron, yaml_tz = cron_from_prefect_yaml(project_dir)
        timezone = timezone or yaml_tz
    timezone = timezone or "UTC"
    next_times(cron, timezone, 1)  # validates cron and timezone before anything is written
    with get_client(sync_client=True) as client:
        _ensure_pool(client, pool)
    # The flow is loaded from the project's entrypoint, as the worker will load it: the core
    # library does not import flows/.
    flow.from_source(source=str(project_dir), entrypoint=ENTRYPOINT).deploy(
        name=DEPLOYMENT,
        work_pool_name=pool,
        schedule=CronSchedule(cron=cron, timezone=timezone),
        parameters={"params_path": params_path, "project_dir": str(project_dir)},
        description="Scheduled retraining: version, train, evaluate, register, gate. "
        "Never deploys a model.",
        tags=["bonebase", "retrain"],
        build=False,
        push=False,
        print_next_steps=False,
        ignore_warnings=True,
    )
    with get_client(sync_client=True) as client:
        dep = _deployment(client)
        client.resume_deployment(dep.id)
        for sched in client.read_deployment_schedules(dep.id):
            client.update_deployment_schedule(dep.id, sched.id, active=True)
    return show()


def disable() -> ScheduleState:
    """Pause the schedule (the deployment stays; `enable` resumes it)."""
    from prefect import get_client

    require_server()
    with get_client(sync_client=True) as client:
        dep = _deployment(client)
        if dep is None:
            raise NotFoundError("no retrain schedule yet: `bonebase schedule enable` creates it")
        for sched in client.read_deployment_schedules(dep.id):
            client.update_deployment_schedule(dep.id, sched.id, active=False)
        client.pause_deployment(dep.id)
    return show()


def show(n_runs: int = 5) -> ScheduleState:
    """The schedule's cron, whether it is active, its next times and its recent runs."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    require_server()
    with get_client(sync_client=True) as client:
        dep = _deployment(client)
        if dep is None:
            raise NotFoundError("no retrain schedule yet: `bonebase schedule enable` creates it")
        schedules = client.read_deployment_schedules(dep.id)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=n_runs,
        )
    cron_sched = next((s for s in schedules if getattr(s.schedule, "cron", None)), None)
    cron = cron_sched.schedule.cron if cron_sched else None
    tz = (cron_sched.schedule.timezone if cron_sched else None) or "UTC"
    active = bool(cron_sched and cron_sched.active and not dep.paused)
    return ScheduleState(
        deployment=f"{FLOW}/{DEPLOYMENT}",
        cron=cron,
        timezone=tz,
        active=active,
        work_pool=dep.work_pool_name,
        next_runs=next_times(cron, tz) if cron and active else [],
        recent_runs=[
            {
                "name": r.name,
                "state": r.state_name,
                "start": r.start_time.isoformat(timespec="seconds") if r.start_time else None,
            }
            for r in runs
        ],
    )
