"""`bonebase quarantine …`: rejected files and rows, listed, released after a fix, discarded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from bonebase.cli_common import console, db_url, settings
from bonebase.i18n import _
from bonebase.ingest.receipt_text import N_

#: The statuses of a quarantine item, for the catalogue (shown translated).
STATUSES = (N_("open"), N_("released"), N_("discarded"))

quarantine_app = typer.Typer(help="Rejected files and rows: list, show, release after a fix, discard.",
                             no_args_is_help=True)


@quarantine_app.command("list")
def quarantine_list(
    site: Annotated[str | None, typer.Option("--site")] = None,
    status: Annotated[str, typer.Option(help="open, released, discarded or all.")] = "open",
    submission: Annotated[int | None, typer.Option("--submission")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List quarantined files and manifest rows with their reason codes."""
    from bonebase.db import quarantine
    from bonebase.db.engine import connect

    with connect(db_url()) as conn:
        items = quarantine.list_items(conn, site=site, submission_id=submission,
                                      status=None if status == "all" else status)
    if as_json:
        print(json.dumps(items, indent=2, default=str))
        return
    from bonebase.ingest.receipt_text import message_text

    table = Table(_("id"), _("site"), _("sub"), _("row"), _("file"), _("status"), _("message"))
    table.add_column(_("reason"), no_wrap=True)
    for i in items:
        # Text, not markup: "[redacted]" in a path or message is the marker, not a style tag.
        table.add_row(*(Text(str(v)) for v in (
            i["id"], i["site"], i["submission_id"], i["row_number"] or "", i["file"] or "",
            _(i["status"]), message_text(i["reason"], i["message"]), i["reason"])))
    console.print(table if items else _("quarantine is empty"))


@quarantine_app.command("show")
def quarantine_show(
    item_id: Annotated[int, typer.Argument(help="Quarantine item id.")],
    header: Annotated[bool, typer.Option(
        "--header", help="Also print the held original's header, attribute by attribute, with "
        "what de-identification does to each (the values are the hospital's own, identified).")
    ] = False,
    image: Annotated[Path | None, typer.Option(
        "--image", help="Write the held image's first frame to this PNG file.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who looks (for the audit log).")] = None,
) -> None:
    """Show a held item before deciding: its reason and which attribute holds which kind of value.

    The held original is read and de-identified again (with a throwaway key) to list the
    attributes that still hold an identifying value, by kind, never the value; --header prints
    the original header (identified: the site's own data) marking what de-identification removes
    or replaces; --image writes the first frame as PNG. Each look is recorded in the audit log.
    """
    from bonebase.db import quarantine
    from bonebase.db.audit import current_actor
    from bonebase.db.engine import connect
    from bonebase.ingest import quarantine_view

    with connect(db_url()) as conn:
        item = quarantine.get_item(conn, item_id)
        parts = ["summary", *(["header"] if header else []), *(["image"] if image else [])]
        quarantine.record_view(conn, item_id, actor=by or current_actor(), part="+".join(parts))
    store = _store()
    view = quarantine_view.inspect(store, item)
    _print_view(view)
    if header and view.header:
        # One line per attribute, the value last: readable at any width, and found by grep.
        console.print(_("header as sent (identified): tag, keyword, VR, what de-identification "
                        "does, value"), markup=False, highlight=False)
        width = max(len(row.keyword) for row in view.header)
        for row in view.header:
            holds = (_("  <- still holds the {kind}").format(kind=row.residue)
                     if row.residue else "")
            console.print(f"  {row.tag} {row.keyword:<{width}} {row.vr:<2} {row.action or '?':<8}"
                          f" {row.value}{holds}", markup=False, highlight=False, soft_wrap=True)
    if image is not None:
        image.write_bytes(quarantine_view.preview_png(store, item))
        console.print(Text(_("first frame written to {path}").format(path=image)))


def _store():
    from bonebase.storage import open_store

    s = settings()
    return open_store(s.object_store_url, endpoint_url=s.s3_endpoint_url, region=s.s3_region)


def _print_view(view) -> None:
    from bonebase.ingest.receipt_text import fix_text, message_text

    item = view.item
    row = _("row {row}").format(row=item["row_number"]) if item["row_number"] else ""
    lines = [_("quarantine item {id}: site {site}, submission {submission_id}, {status}")
             .format(**{**item, "status": _(item["status"])}),
             _("reason:  {reason}").format(reason=item["reason"]),
             _("file:    {where}").format(where=item["file"] or row),
             _("message: {message}").format(message=message_text(item["reason"], item["message"])),
             _("fix:     {fix}").format(fix=fix_text(item["reason"]))]
    if item["resolved_by"]:
        lines.append(_("{status} by {who}: {why}").format(
            status=_(item["status"]), who=item["resolved_by"], why=item["resolution"]))
    if view.findings:
        lines.append(_("identifying values found in the held original after de-identification:"))
        lines += [f"  {hit}" for hit in view.findings]
    elif not view.note and item["reason"] == "phi_residue":
        lines.append(_("no identifying value remains when this original is de-identified today "
                       "(the rule of docs/quarantine.md clears it): release it and resubmit"))
    if view.flags:
        lines.append(_("also to review: {flags}").format(flags=", ".join(view.flags)))
    if view.note:
        lines.append(_("note: {note}").format(note=view.note))
    for line in lines:
        console.print(line, markup=False, highlight=False)


def _resolve(item_id: int, status: str, reason: str, by: str | None) -> None:
    from bonebase.db import quarantine
    from bonebase.db.audit import current_actor
    from bonebase.db.engine import connect

    with connect(db_url()) as conn:
        quarantine.resolve(conn, item_id, status=status, reason=reason, actor=by or current_actor())
    console.print(_("quarantine item {id} {status}").format(id=item_id, status=_(status)))


@quarantine_app.command("release")
def quarantine_release(
    item_id: Annotated[int, typer.Argument(help="Quarantine item id.")],
    reason: Annotated[str, typer.Option("--reason", help="What was fixed.")],
    by: Annotated[str | None, typer.Option("--by", help="Who releases it.")] = None,
) -> None:
    """Mark an item released after the site fixed it (the fixed file/row comes in a resubmission)."""
    _resolve(item_id, N_("released"), reason, by)


@quarantine_app.command("discard")
def quarantine_discard(
    item_id: Annotated[int, typer.Argument(help="Quarantine item id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is discarded.")],
    by: Annotated[str | None, typer.Option("--by", help="Who discards it.")] = None,
) -> None:
    """Discard an item for good, with a recorded reason (its original bytes stay in quarantine)."""
    _resolve(item_id, N_("discarded"), reason, by)
