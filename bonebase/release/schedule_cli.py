"""`bonebase retrain` (one run now) and `bonebase schedule show|enable|disable` (the cron of
the retraining deployment). Both start the Prefect flow of flows/retrain.py; bonebase/cli.py
mounts them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console, db_url, prefect_env

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]

schedule_app = typer.Typer(
    help="The retraining schedule (a Prefect deployment with a cron; needs a Prefect server).",
    no_args_is_help=True,
)

Project = Annotated[
    Path | None,
    typer.Option("--project", help="bonebase project with dvc.yaml (default: the current folder "
                 "when it holds dvc.yaml, else this checkout)."),
]


def _project(project: Path | None) -> Path:
    """--project, else the current folder when it is a project (dvc.yaml), else this checkout."""
    from flows.retrain import DEFAULT_PROJECT

    here = Path.cwd()
    return (project or (here if (here / "dvc.yaml").is_file() else DEFAULT_PROJECT)).resolve()


def retrain(
    params: Annotated[
        str, typer.Option("--params", help="params.yaml, relative to --project.")
    ] = "params.yaml",
    project: Project = None,
    force: Annotated[bool, typer.Option("--force", help="Train even if nothing changed.")] = False,
    truth: Annotated[
        Path | None, typer.Option("--truth", help="Synthetic consortium folder (lesion boxes).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Run the retraining flow once now: version the dataset, train and evaluate on it, register
    the candidate and run the release gate. It never deploys (approve, then deploy)."""
    db_url()
    prefect_env()
    from flows.retrain import retrain_flow

    out = retrain_flow(
        params, str(_project(project)), force=force, truth_dir=str(truth) if truth else None
    )
    if as_json:
        print(json.dumps({k: v for k, v in out.items() if k != "markdown"}, indent=2, default=str))
    elif out["skipped"]:
        console.print(out["reason"], markup=False)
    else:
        console.print(out["markdown"], markup=False)


def _print_state(state, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(state), indent=2, default=str))
        return
    status = "[green]active[/]" if state.active else "[yellow]paused[/]"
    console.print(
        f"{state.deployment}: {status}, cron '{state.cron}' ({state.timezone}), "
        f"work pool {state.work_pool}"
    )
    for t in state.next_runs:
        console.print(f"  next  {t}")
    for r in state.recent_runs:
        console.print(f"  run   {r['start'] or '(not started)'}  {r['state']}  {r['name']}")
    if state.active:
        console.print(f"runs need a worker: prefect worker start --pool {state.work_pool}")


@schedule_app.command("show")
def schedule_show_cmd(as_json: AsJson = False) -> None:
    """The retraining schedule: cron, active or paused, next times, recent runs."""
    prefect_env()
    from bonebase.release.schedule import show

    _print_state(show(), as_json)


@schedule_app.command("enable")
def schedule_enable_cmd(
    cron: Annotated[
        str | None,
        typer.Option("--cron", help="e.g. '0 3 * * 1' (default: prefect.yaml's retrain schedule)."),
    ] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="e.g. Europe/Berlin.")] = None,
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool.")] = "bonebase",
    project: Project = None,
    as_json: AsJson = False,
) -> None:
    """Create or resume the scheduled retraining deployment."""
    prefect_env()
    from bonebase.release.schedule import enable

    _print_state(enable(_project(project), cron=cron, timezone=timezone, pool=pool), as_json)


@schedule_app.command("disable")
def schedule_disable_cmd(as_json: AsJson = False) -> None:
    """Pause the scheduled retraining (enable resumes it)."""
    prefect_env()
    from bonebase.release.schedule import disable

    _print_state(disable(), as_json)
