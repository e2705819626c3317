"""`bonebase submit`, `validate` and `submissions …`: a data steward's commands."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from bonebase.cli_common import console, db_url, err, prefect_env, settings
from bonebase.i18n import _

_MATCH_HELP = ("How images match manifest rows for this submission: accession, patient_date, "
               "study_uid or folder (docs/manifest.md, 'Matching images to rows'). Default: the "
               "site's rule (bonebase site update --match), else accession.")

subs_app = typer.Typer(help="Submissions and their receipts.", no_args_is_help=True)


def submit(
    source: Annotated[str, typer.Argument(help="Submission folder, zip file, or s3://bucket/prefix.")],
    site: Annotated[str, typer.Option("--site", help="The submitting hospital's code.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")] = False,
    match: Annotated[str | None, typer.Option("--match", help=_MATCH_HELP)] = None,
) -> None:
    """Ingest a hospital's submission (manifest.csv + DICOM) with the Prefect flow and print the
    receipt: accepted, quarantined (with reasons and fixes), duplicates."""
    from bonebase.db.sites import check_code
    from bonebase.ingest.match import check_rule

    check_code(site)
    if match is not None:
        check_rule(match)
    _active_site(site)  # a migrated database, and a site that may submit, before the flow starts
    prefect_env()
    import logging

    from flows.ingest import ingest_submission

    logging.getLogger("prefect.flow_runs").addFilter(_without_traceback)

    with _progress_bar() as progress:
        result = ingest_submission(site, source, progress=progress, match_rule=match)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    _print_receipt(result)


@contextmanager
def _progress_bar():
    """A progress callback (stage, done, total) drawing one bar per stage on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


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
        console.print(_("submission {submission} was already ingested: nothing changed")
                      .format(submission=result.get("submission")))
    c = {key: 0 for key in ("cases_accepted", "cases_new", "cases_updated", "files_stored",
                            "files_duplicate", "quarantined", "warnings")}
    c.update(result.get("counts") or {})
    console.print(_(
        "submission {submission} ({site}): {cases_accepted} cases accepted (new {cases_new}, "
        "updated {cases_updated}), {files_stored} files stored, {files_duplicate} duplicates, "
        "{quarantined} quarantined, {warnings} warnings").format(
            submission=result.get("submission"), site=result.get("site"), **c))
    for reason, n in (c.get("by_reason") or {}).items():
        console.print(_("  quarantine {reason}: {n}").format(reason=reason, n=n))
    for key, path in (result.get("paths") or {}).items():
        console.print(_("  receipt ({kind}): {path}").format(kind=key, path=path))
    if result.get("data_docs"):
        console.print(_("  validation report: {path}").format(path=result["data_docs"]))


def validate(
    source: Annotated[str, typer.Argument(help="Submission folder, zip file, or s3://bucket/prefix.")],
    site: Annotated[str, typer.Option("--site", help="The submitting hospital's code.")],
    open_docs: Annotated[bool, typer.Option("--open", help="Print the Data Docs path.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the prediction as JSON.")] = False,
    match: Annotated[str | None, typer.Option("--match", help=_MATCH_HELP)] = None,
) -> None:
    """Predict what `bonebase submit` would do with a submission, storing nothing.

    Runs every stage that submit runs up to storing: the listing with its limits,
    de-identification into a scratch folder (deleted after) with the residue scan, image QC, the
    validation suites, matching images to rows and the check of what other sites hold; then
    prints the cases that would be accepted and every file or row that would be quarantined,
    with its reason and what to do. Only whether a case is new or updated, and which files the
    site sent before, is left to submit. Exit codes: 0 nothing would be quarantined; 1 something
    would be (listed); 2-5 the submission cannot be checked (settings, database, unknown site,
    bad input: the one-line message says why and what to do)."""
    from bonebase.db.sites import check_code
    from bonebase.ingest.match import check_rule

    check_code(site)
    if match is not None:
        check_rule(match)
    prefect_env()
    from flows.ingest_check import predict_submission

    with _progress_bar() as progress:
        predicted = predict_submission(site, source, settings=settings(), match_rule=match,
                                       database=db_url, progress=progress)
    if as_json:
        print(json.dumps(predicted, indent=2, default=str))
    else:
        _print_prediction(predicted)
    if open_docs or not as_json:
        console.print(_("Data Docs: {path}").format(path=predicted["data_docs"]), highlight=False)
    if predicted["quarantine"]:
        raise typer.Exit(1)


def _print_prediction(predicted: dict) -> None:
    from rich.markup import escape  # messages hold "[redacted]", which is no markup

    from bonebase.ingest.receipt_text import fix_text, message_text

    c = predicted["counts"]
    console.print(_(
        "site {site}: {rows} rows, {files} files: submit would accept {cases_accepted} cases "
        "({files_accepted} files), quarantine {quarantined}, warn {warnings}; images matched to "
        "rows by rule {rule}").format(site=predicted["site"], rule=predicted["match_rule"], **c),
        highlight=False)
    by_rule: dict[str, list[str]] = {}
    for case in predicted["cases"]:
        by_rule.setdefault(case["matched_by"] or "", []).append(str(case["row"]))
    accept, quarantine, warning = _("accept"), _("quarantine"), _("warning")
    width = max(len(accept), len(quarantine), len(warning)) + 1
    for how, rows in by_rule.items():
        shown = ", ".join(rows[:20])
        if len(rows) > 20:
            shown += _(" and {n} more").format(n=len(rows) - 20)
        console.print(f"[green]{accept:<{width}}[/]"
                      + escape(_("{n} case(s) matched by {how}: row(s) {rows}")
                               .format(n=len(rows), how=how, rows=shown)), highlight=False)
    for q in predicted["quarantine"]:
        row = _("row {row}").format(row=q["row"]) if q["row"] else ""
        place = ", ".join(p for p in (row, q["file"] or "") if p)
        console.print(f"[red]{quarantine:<{width}}[/]{q['reason']:<22} {escape(place)}: "
                      f"{escape(message_text(q['reason'], q['message']))} [dim]("
                      + escape(_("fix: {fix}").format(fix=fix_text(q["reason"]))) + ")[/]",
                      highlight=False)
    for w in predicted["warnings"]:
        console.print(f"[yellow]{warning:<{width}}[/]{w['reason']:<22} "
                      f"{escape(message_text(w['reason'], w['message']))}", highlight=False)
    for note in predicted["notes"]:
        console.print(_("note: {note}").format(note=note), highlight=False, markup=False)
    console.print(_("not predicted: {what}").format(what=_(predicted["not_predicted"])),
                  highlight=False)


@subs_app.command("list")
def submissions_list(site: Annotated[str | None, typer.Option("--site")] = None) -> None:
    """List submissions, newest first."""
    from bonebase.db import submissions
    from bonebase.db.engine import connect

    with connect(db_url()) as conn:
        rows = submissions.list_(conn, site=site)
    table = Table(_("id"), _("site"), _("status"), _("accepted"), _("quarantined"), _("received"),
                  _("source"))
    for r in rows:
        c = r["counts"] or {}
        table.add_row(str(r["id"]), r["site"], r["status"], str(c.get("cases_accepted", "")),
                      str(c.get("quarantined", "")), f"{r['created_at']:%Y-%m-%d %H:%M}", r["source"])
    console.print(table if rows else _("no submissions yet: `bonebase submit PATH --site CODE`"))


@subs_app.command("show")
def submissions_show(
    submission_id: Annotated[int, typer.Argument(help="Submission id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole receipt as JSON.")] = False,
) -> None:
    """Show a submission's receipt."""
    from bonebase.db import submissions
    from bonebase.db.engine import connect
    from bonebase.db.sites import get_site

    with connect(db_url()) as conn:
        row = submissions.get(conn, submission_id)
        site_language = get_site(conn, row["site"]).language
    if as_json:
        print(json.dumps(row["receipt"], indent=2, default=str))
        return
    from bonebase.ingest.receipt import to_markdown

    # The receipt in the site's language, unless `bonebase --lang` asks for another.
    lang = os.environ.get("BONEBASE_LANG") or site_language
    console.print(_("status {status}, received {at:%Y-%m-%d %H:%M}", lang)
                  .format(status=row["status"], at=row["created_at"]))
    if row["receipt"]:
        console.print(to_markdown(row["receipt"], lang), markup=False, highlight=False)
