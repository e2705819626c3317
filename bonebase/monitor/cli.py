"""`bonebase monitor`: the champion watch (#23)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console, db_and_store, db_url, prefect_env

monitor_app = typer.Typer(help="How the deployed model does on each site's new data: performance, "
                          "drift and alerts.", no_args_is_help=True)

Params = Annotated[Path, typer.Option("--params", help="params.yaml whose monitor: section holds "
                                      "the thresholds (defaults when it has none).")]
Task = Annotated[str, typer.Option("--task", help="The deployed model's task.")]


def _ctx():
    return db_and_store()


@monitor_app.command("run")
def run_cmd(
    submission: Annotated[int | None, typer.Option("--submission", help="Only this submission's "
                                                   "radiographs (default: all not scored yet).")] = None,
    site: Annotated[list[str] | None, typer.Option("--site", help="Check these sites (default: "
                                                   "the submission's, or every scored one).")] = None,
    params: Params = Path("params.yaml"),
    task: Task = "benign_vs_malignant",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score new radiographs with the deployed model and check each site (the watch-champion
    Prefect flow); exit 1 when an alert fires."""
    from bonebase.monitor.policy import load

    load(params)  # a bad monitor: section is refused before the flow starts
    db_url()
    prefect_env()
    from bonebase.flow_run import in_process
    from flows.monitor import watch_flow

    with in_process():
        out = watch_flow(submission_id=submission, params_path=str(params), task_name=task,
                         sites=list(site) if site else None)
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        s = out["scored"]
        console.print(f"model {out['model']}: scored {s['reference']} reference and {s['watch']} "
                      f"new radiographs ({s['unreadable']} unreadable)")
        for a in out["alerts"]:
            console.print(f"[red]ALERT[/] {a['site']} {a['kind']}: {'; '.join(a['reasons'])}",
                          markup=True)
        if not out["alerts"]:
            console.print(f"no alert ({len(out['checks'])} site(s) checked)")
    if out["alerts"]:
        raise typer.Exit(1)


@monitor_app.command("status")
def status_cmd(
    site: Annotated[str | None, typer.Option("--site", help="One site only.")] = None,
    task: Task = "benign_vs_malignant",
    params: Params = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Each site's newest checks of the deployed model: n, AUC with its 95% CI, sensitivity and
    specificity at the locked threshold, calibration, drift share, alerts."""
    from rich import box
    from rich.table import Table

    from bonebase.monitor import db, status  # not watch: it imports the model (torch, seconds)
    from bonebase.monitor.policy import load

    policy = load(params)  # the modalities the watch scores: the unscored count counts those
    conn, _ = _ctx()
    with conn:
        model = db.champion(conn, task=task)
        rows = status.table(conn, model_id=model["id"], site=site)
        unscored = db.count_unscored(conn, model_id=model["id"],
                                     modalities=list(policy.modalities))
    if as_json:
        print(json.dumps({"model": model["id"], "task": task, "sites": rows,
                          "unscored": unscored}, indent=2, default=str))
        return
    if unscored:
        console.print(f"model {model['id']} has not scored {unscored} radiograph(s) yet (a "
                      "background watch still running or failed, or images that arrived before "
                      "it was deployed): bonebase monitor run scores them")
    if not rows:
        console.print(f"model {model['id']}: no site checked yet; run bonebase monitor run")
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"champion watch: model {model['id']} ({task})")
    for h in status.HEADERS:
        table.add_column(h, overflow="fold")
    for cells in status.text_rows(rows):
        table.add_row(*cells, style="red" if cells[-1] == "ALERT" else None)
    console.print(table)


@monitor_app.command("ack")
def ack_cmd(
    check: Annotated[int, typer.Argument(help="The check id (bonebase monitor status --json).")],
    by: Annotated[str, typer.Option("--by", help="Who looked at it.")],
    reason: Annotated[str, typer.Option("--reason", help="What was done about it.")],
) -> None:
    """Acknowledge an alert: the models page's banner drops it; an audit event keeps who and why."""
    from bonebase.db import audit
    from bonebase.errors import InputError, NotFoundError
    from bonebase.monitor import db

    if not by.strip() or not reason.strip():
        raise InputError("acknowledging an alert needs --by NAME and a --reason")
    conn, _ = _ctx()
    with conn:
        row = db.get_check(conn, check)
        if row is None:
            raise NotFoundError(f"no check {check}; see bonebase monitor status --json")
        db.acknowledge(conn, check, by=by.strip())
        audit.record(conn, action="monitor.acknowledge", entity="model", entity_id=row["model_id"],
                     actor=by.strip(), details={"check": check, "site": row["site"],
                                                "reason": reason.strip()})
        conn.commit()
    console.print(f"check {check} ({row['site']}, {row['kind']}) acknowledged by {by.strip()}")


@monitor_app.command("report")
def report_cmd(
    check: Annotated[int, typer.Argument(help="A drift check id (bonebase monitor status --json).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML report.")],
) -> None:
    """Write a drift check's HTML report (self-contained, readable offline)."""
    from bonebase.errors import NotFoundError
    from bonebase.monitor import db

    conn, store = _ctx()
    with conn:
        row = db.get_check(conn, check)
    if row is None or not row["report_key"]:
        raise NotFoundError(f"check {check} has no report; drift checks have one "
                            "(bonebase monitor status --json)")
    out.write_bytes(store.get_bytes(row["report_key"]))
    console.print(f"report of check {check} ({row['site']}): {out}")
