"""The `bonebase` command.

Imports of the heavy stack (torch, prefect, GX, bentoml, DVC) happen inside the commands that need
them, so `bonebase --help` answers at once. Expected failures (BonebaseError) print one line and
exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bonebase.cli_common import console, err, redact
from bonebase.cli_common import db_url as _db_url
from bonebase.cli_common import settings as _settings
from bonebase.cli_help import tidy as tidy_help
from bonebase.demo_cli import demo
from bonebase.errors import BonebaseError
from bonebase.site_cli import site_app

app = typer.Typer(
    help="bonebase: the data and model platform of a multi-centre bone tumour imaging database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database server and schema migrations.", no_args_is_help=True)
app.add_typer(site_app, name="site")


@app.callback()
def _options(
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="Language of messages: en or zh-Hans (default: LC_ALL, LC_MESSAGES, LANG).",
            metavar="LANG",
        ),
    ] = None,
) -> None:
    """bonebase: the data and model platform of a multi-centre bone tumour imaging database."""
    if lang is not None:
        import os

        from bonebase.i18n import normalise

        tag = normalise(lang)
        if tag is None:
            raise typer.BadParameter(f"{lang!r}: use en or zh-Hans", param_hint="--lang")
        os.environ["BONEBASE_LANG"] = tag  # subprocesses (flows, workers) speak it too
app.add_typer(db_app, name="db")


def _mount_subapps() -> None:
    """Sub-apps defined next to their code; their modules import nothing heavy at top level."""
    from bonebase.dataset.cli import dataset_app
    from bonebase.federated.cli import federated_app
    from bonebase.gateway.cli import gateway_app
    from bonebase.importers.cli import import_app
    from bonebase.ingest.cli import submit, subs_app, validate
    from bonebase.ingest.quarantine_cli import quarantine_app
    from bonebase.monitor.cli import monitor_app
    from bonebase.prefect_cli import prefect_app
    from bonebase.readerstudy.cli import reader_app
    from bonebase.release.cli import models_app
    from bonebase.release.schedule_cli import retrain, schedule_app
    from bonebase.secret_cli import secret_app

    app.command()(submit)
    app.command()(retrain)
    app.add_typer(schedule_app, name="schedule")
    app.command()(validate)
    app.add_typer(subs_app, name="submissions")
    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(models_app, name="models")
    app.add_typer(secret_app, name="secret")
    app.add_typer(prefect_app, name="prefect")
    app.add_typer(gateway_app, name="gateway")
    app.add_typer(import_app, name="import")
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(reader_app, name="reader-study")
    app.add_typer(federated_app, name="federated")
    from web.cli import register as register_web

    register_web(app)



# `bonebase demo` is defined beside the story it runs (it starts the flows); registered here, first
app.command()(demo)


# --------------------------------------------------------------------------------------------
@app.command()
def init() -> None:
    """Create a bonebase home, a development secret, the database, and migrate it to the latest schema.

    The home is BONEBASE_HOME when set, else the nearest .bonebase folder in this folder or its
    parents, else a new ./.bonebase here (run it in your home folder for a user-level
    ~/.bonebase, which other commands use outside any project). Safe to run again: it reuses what
    exists and applies only missing migrations.
    """
    from bonebase.db.migrate import upgrade

    settings = _settings().for_init()
    settings.ensure_home()
    made = settings.ensure_secret()
    settings.consortium_secret()  # refuses a development key in production
    url = _db_url(migrated=False, create=True, of=settings)
    revision = upgrade(url)
    store = settings.object_store_url
    if "://" not in store:
        Path(store).mkdir(parents=True, exist_ok=True)
    console.print(f"[green]ready[/] home={settings.describe_home()}")
    console.print(f"  database  {redact(url)} (schema {revision})")
    console.print(f"  objects   {store}")
    console.print(f"  secret    {'generated in ' + str(settings.secret_file) if made else 'present'}")


# --------------------------------------------------------------------------------------------
@db_app.command("status")
def db_status() -> None:
    """Show the home, the database URL and its schema revision against the code's."""
    from bonebase.db.migrate import current_revision, head_revision

    url = _db_url(migrated=False)
    console.print(f"home     {_settings().describe_home()}")
    console.print(f"database {redact(url)}")
    console.print(f"schema   {current_revision(url) or 'empty'} (code expects {head_revision()})")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from bonebase.db.migrate import upgrade

    console.print(f"schema at {upgrade(_db_url(migrated=False), revision)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. 'base' or '0001'.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: downgrading drops data.")] = False,
) -> None:
    """Revert migrations down to REVISION (drops the tables the later revisions made)."""
    from bonebase.db.migrate import downgrade

    if not yes:
        raise BonebaseError("downgrade drops tables and their data; repeat with --yes to confirm")
    console.print(f"schema at {downgrade(_db_url(migrated=False), revision) or 'base'}")


@db_app.command("scrub-prefect")
def db_scrub_prefect() -> None:
    """Remove secrets (the consortium key, database passwords) from the flow-run parameters that
    bonebase versions before #15 left in Prefect's database, then compact its SQLite file."""
    import os

    from bonebase.cli_common import prefect_env

    if not (os.environ.get("PREFECT_API_URL") or os.environ.get("PREFECT_HOME")):
        _settings().require_home()  # scrubbing a new, empty home would report a clean one
    prefect_env()  # the same Prefect state as `submit`, `retrain` and `dataset version`
    from bonebase.prefect_scrub import known_secrets, scrub

    report = scrub(known=known_secrets())
    console.print(f"{len(report.rewritten)} of {report.flow_runs} flow runs held secrets in "
                  "their parameters: rewritten")  # fmt: skip
    if report.vacuumed:
        console.print(f"compacted {report.vacuumed} (old bytes removed, mode 0600)")
    else:
        console.print("Prefect's database is not a local SQLite file: run VACUUM FULL on the "
                      "server's flow_run table to drop the old rows' bytes")  # fmt: skip


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server of this home (no-op when DATABASE_URL is set)."""
    from bonebase.db.engine import stop_embedded

    settings = _settings()
    if settings.database_url:
        console.print("DATABASE_URL is set: no embedded server to stop")
    elif stop_embedded(settings.pg_dir):
        console.print(f"embedded server stopped (home {settings.home})")
    else:
        console.print(f"the embedded server of {settings.describe_home()} is not running")


# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (created).")],
    sites: Annotated[int, typer.Option("--sites", min=1, max=26, help="Hospitals.")] = 4,
    cases_per_site: Annotated[int, typer.Option("--cases-per-site", min=1)] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: cores).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Empty OUT first if it has files.")] = False,
    burned_in: Annotated[float, typer.Option(
        "--burned-in", min=0.0, max=1.0,
        help="Share of radiographs with the patient's name, ID, dates and hospital burned into "
             "the pixels (truth in CODE/burned_in.csv; benchmarks/burned_in.py scores it).")] = 0.0,
) -> None:
    """Generate a synthetic consortium: per hospital a submission folder with manifest.csv, DICOM
    radiographs (plus a few CT/MR series), identifying header data and injected faults (faults.json).
    """
    from rich.progress import Progress

    from bonebase.synth import generate

    total = sites * cases_per_site
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("generating cases", total=total)
        summary = generate(out, sites=sites, cases_per_site=cases_per_site, seed=seed,
                           workers=workers, overwrite=overwrite, burned_in=burned_in,
                           progress=lambda n: progress.advance(task, n))
    console.print(f"[green]wrote[/] {out}: {summary}")


_mount_subapps()
tidy_help(app)  # after every command is mounted: no docstring line breaks mid-sentence in --help


def main() -> None:
    try:
        app()
    except BonebaseError as exc:
        # escape: a message quotes values ("[redacted]", a path with brackets), not markup
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
