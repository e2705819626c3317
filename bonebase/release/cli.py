"""The release stage's commands: `bonebase models …` (register, list, show, compare, approve,
reject, deploy and roll back model versions; the supervised server). bonebase/cli.py mounts
them; `retrain` and `schedule` are in schedule_cli.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from bonebase.cli_common import console, db_and_store

models_app = typer.Typer(
    help="Model releases: registry, gate, approval, deployment.", no_args_is_help=True
)

# Used only when params.yaml has no `release:` section (printed as a warning when used).
DEFAULT_POLICY = {
    "auc_ci_low_min": 0.70,
    "site_auc_min": 0.65,
    "ece_max": 0.10,
    "min_test_cases": 30,
    "noninferiority_margin": 0.05,
}

By = Annotated[str | None, typer.Option("--by", help="Name of the person responsible.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (required to override or reject).")]
Params = Annotated[Path, typer.Option("--params", help="params.yaml with a release: section.")]
Data = Annotated[
    Path | None,
    typer.Option("--data", help="Exported data/ with split.csv, for the head-to-head check "
                 "against the champion (default: ./data when it holds split.csv)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _ctx():
    return db_and_store()


def release_policy(params: Path) -> dict:
    """The `release:` section of ``params`` (the defaults, with a warning, when it has none)."""
    import yaml

    section = None
    if params.is_file():
        section = (yaml.safe_load(params.read_text()) or {}).get("release")
    if section is None:
        console.print(f"[yellow]{params} has no release: section; using {DEFAULT_POLICY}[/]")
        return dict(DEFAULT_POLICY)
    return dict(section)


def _print(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        console.print_json(json.dumps(obj, default=str))


@models_app.command("register")
def register_cmd(
    checkpoint: Annotated[Path, typer.Option("--model")] = Path("models/model.pt"),
    metrics: Annotated[Path, typer.Option("--metrics")] = Path("reports/metrics.json"),
    report: Annotated[Path | None, typer.Option("--report")] = Path("reports/report.html"),
    by: By = None,
) -> None:
    """Register a trained model (checkpoint, metrics, report) as a candidate."""
    from bonebase.release import registry

    conn, store = _ctx()
    with conn:
        rep = report if report is not None and report.is_file() else None
        row = registry.register(
            conn, store, checkpoint=checkpoint, metrics=metrics, report=rep, by=by
        )
    console.print(f"model {row['id']} ({row['task']}, {row['arch']}): {row['status']}")


@models_app.command("list")
def list_cmd(
    task: Annotated[str | None, typer.Option("--task")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="Also the architecture, code revision and who registered.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Registered models, newest first (one line each; fits 80 columns without --wide)."""
    from bonebase.db.models import list_models  # not the registry: it imports torch (seconds)

    conn, _ = _ctx()
    with conn:
        rows = list_models(conn, task=task, status=status)
    if as_json:
        _print(rows, True)
        return
    # No borders and one space between columns: a row is one line on an 80-column terminal.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    names = ["id", "task", *(["arch"] if wide else []), "status", "test AUC", "dataset",
             *(["code", "by"] if wide else []), "created"]
    for name in names:
        table.add_column(name, no_wrap=True, overflow="ellipsis",
                         justify="right" if name in ("id", "test AUC") else "left")
    for r in rows:
        auc = ((r["metrics"] or {}).get("test") or {}).get("auc")
        cells = {
            "id": str(r["id"]), "task": r["task"], "arch": r["arch"], "status": r["status"],
            "test AUC": "" if auc is None else f"{auc:.3f}",
            "dataset": str(r["dataset_version"] or "")[:12],  # in full: show, --json
            "code": str(r["code_revision"] or "")[:12], "by": r["created_by"],
            "created": r["created_at"].strftime("%Y-%m-%d %H:%M"),
        }
        table.add_row(*(cells[name] for name in names))
    console.print(table if rows else "no models registered yet: `bonebase retrain` or "
                  "`bonebase models register`")


@models_app.command("show")
def show_cmd(model_id: int, as_json: AsJson = False) -> None:
    """One model with its metrics, approvals and deployments."""
    from bonebase.release import registry

    conn, _ = _ctx()
    with conn:
        _print(registry.show(conn, model_id), as_json)


@models_app.command("compare")
def compare_cmd(
    a: int,
    b: int,
    data: Annotated[Path, typer.Option("--data")] = Path("data"),
    as_json: AsJson = False,
) -> None:
    """A vs B on the same locked test + external cases: AUCs, DeLong test, per-site AUCs."""
    from bonebase.release import registry

    conn, store = _ctx()
    with conn:
        out = registry.compare(conn, store, a=a, b=b, data_dir=data)
    if as_json:
        _print(out, True)
        return
    d = out["delong"]
    console.print(
        f"{out['n_cases']} cases ({out['n_positive']} positive)\n"
        f"A #{a}: AUC {out['a']['auc']:.3f} [{out['a']['ci_low']:.3f}, {out['a']['ci_high']:.3f}]\n"
        f"B #{b}: AUC {out['b']['auc']:.3f} [{out['b']['ci_low']:.3f}, {out['b']['ci_high']:.3f}]\n"
        f"A - B: {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], DeLong p={d['p']:.3g}"
    )
    table = Table("site", "cases", "positive", "AUC A", "AUC B")
    for s in out["sites"]:
        fmt = [("" if s[k] is None else f"{s[k]:.3f}") for k in ("auc_a", "auc_b")]
        table.add_row(s["site"], str(s["n_cases"]), str(s["n_positive"]), *fmt)
    console.print(table)


@models_app.command("approve")
def approve_cmd(
    model_id: int,
    by: By = None,
    reason: Reason = "",
    override: Annotated[
        bool, typer.Option("--override", help="Approve despite a failed gate.")
    ] = False,
    params: Params = Path("params.yaml"),
    data: Data = None,
    as_json: AsJson = False,
) -> None:
    """Run the release gate and approve the model in the name of --by."""
    from bonebase.release import registry

    conn, store = _ctx()
    with conn:
        out = registry.approve(
            conn,
            store,
            model_id,
            by=by,
            reason=reason,
            override=override,
            policy=release_policy(params),
            data_dir=data or _local_data(),
        )
    _print(out["gate"], as_json)
    console.print(f"model {model_id} approved by {by}")


def _local_data() -> Path | None:
    """./data when it holds an export's split.csv (the guides run in the project's folder)."""
    return Path("data") if (Path("data") / "split.csv").is_file() else None


@models_app.command("reject")
def reject_cmd(model_id: int, by: By = None, reason: Reason = "") -> None:
    """Reject a model with a reason."""
    from bonebase.release import registry

    conn, _ = _ctx()
    with conn:
        registry.reject(conn, model_id, by=by, reason=reason)
    console.print(f"model {model_id} rejected by {by}")


def _home_and_project() -> tuple[Path, Path]:
    import bonebase
    from bonebase.config import get_settings

    return get_settings().home, Path(bonebase.__file__).resolve().parents[1]


def _maybe_serve(tag: str, serve: bool, port: int) -> None:
    if not serve:
        console.print(
            f"serve it with: bonebase models server start --port {port} (or BONEBASE_MODEL_TAG="
            f"{tag} bentoml serve serving.service:Diagnosis --port {port})"
        )
        return
    from bonebase.release import supervisor

    home, project = _home_and_project()
    with console.status(f"starting bentoml serve for {tag} (restarting the running one)"):
        state = supervisor.start(
            home, tag, project=project, port=port, token=os.environ.get("BONEBASE_API_TOKEN")
        )
    console.print(
        f"serving {tag} at {state['url']} (Swagger UI at {state['url']}/, log {state['log']}); "
        "stop with `bonebase models server stop`"
    )


Serve = Annotated[
    bool, typer.Option("--serve", help="Then (re)start the supervised `bentoml serve`.")
]
Port = Annotated[int, typer.Option("--port")]
Url = Annotated[str | None, typer.Option("--url", help="Where it is served (recorded).")]


@models_app.command("deploy")
def deploy_cmd(
    model_id: int, by: By = None, url: Url = None, serve: Serve = False, port: Port = 3000
) -> None:
    """Deploy an approved model (BentoML model store + deployment record)."""
    from bonebase.release import registry

    conn, store = _ctx()
    with conn:
        row = registry.deploy(conn, store, model_id, by=by, url=url)
    console.print(f"model {model_id} deployed as {row['bento_tag']}")
    _maybe_serve(row["bento_tag"], serve, port)


@models_app.command("rollback")
def rollback_cmd(
    task: Annotated[str, typer.Option("--task")] = "benign_vs_malignant",
    by: By = None,
    url: Url = None,
    serve: Serve = False,
    port: Port = 3000,
) -> None:
    """Put the previous approved champion of --task back; the current one is retired."""
    from bonebase.release import registry

    conn, store = _ctx()
    with conn:
        row = registry.rollback(conn, store, task=task, by=by, url=url)
    console.print(f"rolled back to model {row['model_id']} ({row['bento_tag']})")
    _maybe_serve(row["bento_tag"], serve, port)


server_app = typer.Typer(help="The supervised local `bentoml serve` of the champion.",
                         no_args_is_help=True)
models_app.add_typer(server_app, name="server")


@server_app.command("start")
def server_start_cmd(
    task: Annotated[str, typer.Option("--task")] = "benign_vs_malignant", port: Port = 3000
) -> None:
    """(Re)start serving the deployed champion of --task in the background."""
    from bonebase.db import models as q
    from bonebase.errors import NotFoundError

    conn, _ = _ctx()
    with conn:
        champion = q.deployed_model(conn, task=task)
        if champion is None:
            raise NotFoundError(f"no deployed {task} model: `bonebase models deploy ID` first")
        deps = [d for d in q.deployments(conn, task=task) if d["model_id"] == champion["id"]]
    _maybe_serve(deps[0]["bento_tag"], True, port)  # newest first


@server_app.command("status")
def server_status_cmd(as_json: AsJson = False) -> None:
    """Whether the server runs, answers, and which model version it serves."""
    from bonebase.release import supervisor

    home, _ = _home_and_project()
    state = supervisor.status(home, token=os.environ.get("BONEBASE_API_TOKEN"))
    if as_json:
        print(json.dumps(state, indent=2))
    elif not state["running"]:
        console.print("no server running (bonebase models deploy ID --serve starts one)")
    else:
        ready = "[green]ready[/]" if state["ready"] else "[red]not ready[/]"
        console.print(f"{state['url']}: {ready}, serving {state['serving'] or state['tag']} "
                      f"(pid {state['pid']}, since {state['started_at']}, log {state['log']})")


@server_app.command("stop")
def server_stop_cmd() -> None:
    """Stop the supervised server."""
    from bonebase.release import supervisor

    home, _ = _home_and_project()
    state = supervisor.stop(home)
    console.print(f"stopped {state['tag']} at {state['url']}" if state else "no server running")
