"""`bonebase submit`, `validate` and `submissions …`: a data steward's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bonebase.cli_common import console, db_url, err, prefect_env, settings

subs_app = typer.Typer(help="Submissions and their receipts.", no_args_is_help=True)


def submit(
    source: Annotated[str, typer.Argument(help="Submission folder, zip file, or s3://bucket/prefix.")],
    site: Annotated[str, typer.Option("--site", help="The submitting hospital's code.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")] = False,
) -> None:
    """Ingest a hospital's submission (manifest.csv + DICOM) with the Prefect flow and print the
    receipt: accepted, quarantined (with reasons and fixes), duplicates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from bonebase.db.sites import check_code

    check_code(site)
    _active_site(site)  # a migrated database, and a site that may submit, before the flow starts
    prefect_env()
    import logging

    from flows.ingest import ingest_submission

    logging.getLogger("prefect.flow_runs").addFilter(_without_traceback)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = ingest_submission(site, source, progress=progress)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    _print_receipt(result)


def _active_site(code: str):
    """The registered, active site ``code`` (else an error saying what to do)."""
    from bonebase.db.engine import connect
    from bonebase.db.sites import get_site, require_active

    with connect(db_url()) as conn:
        return require_active(get_site(conn, code))


def _without_traceback(record) -> bool:
    """A failed submission (a BonebaseError, its message written for people and naming its
    receipt) is logged by Prefect in one line: the CLI's output stays one line, as for any
    expected failure."""
    from bonebase.errors import BonebaseError

    if record.exc_info and isinstance(record.exc_info[1], BonebaseError):
        record.exc_info, record.exc_text = None, None
    return True


def _print_receipt(result: dict) -> None:
    if result.get("already_ingested"):
        console.print(f"submission {result.get('submission')} was already ingested: nothing changed")
    c = result.get("counts", {})
    console.print(
        f"submission {result.get('submission')} ({result.get('site')}): "
        f"{c.get('cases_accepted', 0)} cases accepted (new {c.get('cases_new', 0)}, updated "
        f"{c.get('cases_updated', 0)}), {c.get('files_stored', 0)} files stored, "
        f"{c.get('files_duplicate', 0)} duplicates, {c.get('quarantined', 0)} quarantined, "
        f"{c.get('warnings', 0)} warnings")
    for reason, n in (c.get("by_reason") or {}).items():
        console.print(f"  quarantine {reason}: {n}")
    for key, path in (result.get("paths") or {}).items():
        console.print(f"  receipt ({key}): {path}")
    if result.get("data_docs"):
        console.print(f"  validation report: {result['data_docs']}")


def validate(
    source: Annotated[Path, typer.Argument(help="Submission folder (manifest.csv + DICOM).")],
    site: Annotated[str, typer.Option("--site", help="The submitting hospital's code.")],
    open_docs: Annotated[bool, typer.Option("--open", help="Print the Data Docs path.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the failures as JSON.")] = False,
) -> None:
    """Validate a submission with the Great Expectations suites without ingesting it (nothing is
    stored but the Data Docs report). Exit code 1 when an error-level check fails."""
    from bonebase.db.sites import check_code
    from validation.inputs import load_headers, load_manifest
    from validation.runner import validate_submission

    check_code(site)
    from bonebase.ingest.scan import find_manifest

    manifest_path = find_manifest(source)
    manifest = load_manifest(manifest_path)
    headers, file_faults = load_headers(manifest_path.parent)
    docs = settings().ensure_home() / "datadocs" / f"check-{site}"
    report = validate_submission(manifest, headers, site=site, submission_id="check",
                                 docs_dir=docs)
    failures = file_faults + report.failures
    if as_json:
        print(json.dumps([f.as_dict() for f in failures], indent=2, default=str))
    else:
        errors = [f for f in failures if f.severity == "error"]
        console.print(f"{len(manifest)} rows, {len(headers)} DICOM files: {len(errors)} errors, "
                      f"{len(failures) - len(errors)} warnings")
        for f in failures:
            colour = "red" if f.severity == "error" else "yellow"
            console.print(f"[{colour}]{f.severity:<7}[/] {f.reason:<28} {f.message}",
                          highlight=False, markup=True)
    if open_docs or not as_json:
        console.print(f"Data Docs: {report.data_docs_index}")
    if any(f.severity == "error" for f in failures):
        raise typer.Exit(1)


@subs_app.command("list")
def submissions_list(site: Annotated[str | None, typer.Option("--site")] = None) -> None:
    """List submissions, newest first."""
    from bonebase.db import submissions
    from bonebase.db.engine import connect

    with connect(db_url()) as conn:
        rows = submissions.list_(conn, site=site)
    table = Table("id", "site", "status", "accepted", "quarantined", "received", "source")
    for r in rows:
        c = r["counts"] or {}
        table.add_row(str(r["id"]), r["site"], r["status"], str(c.get("cases_accepted", "")),
                      str(c.get("quarantined", "")), f"{r['created_at']:%Y-%m-%d %H:%M}", r["source"])
    console.print(table if rows else "no submissions yet: `bonebase submit PATH --site CODE`")


@subs_app.command("show")
def submissions_show(
    submission_id: Annotated[int, typer.Argument(help="Submission id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole receipt as JSON.")] = False,
) -> None:
    """Show a submission's receipt."""
    from bonebase.db import submissions
    from bonebase.db.engine import connect

    with connect(db_url()) as conn:
        row = submissions.get(conn, submission_id)
    if as_json:
        print(json.dumps(row["receipt"], indent=2, default=str))
        return
    from bonebase.ingest.receipt import to_markdown

    console.print(f"status {row['status']}, received {row['created_at']:%Y-%m-%d %H:%M}")
    if row["receipt"]:
        console.print(to_markdown(row["receipt"]), markup=False, highlight=False)
