"""`bonebase quarantine …`: rejected files and rows, listed, released after a fix, discarded."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from bonebase.cli_common import console, db_url

quarantine_app = typer.Typer(help="Rejected files and rows: list, release after a fix, discard.",
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
    table = Table("id", "site", "sub", "row", "file", "status", "message")
    table.add_column("reason", no_wrap=True)
    for i in items:
        table.add_row(str(i["id"]), i["site"], str(i["submission_id"]), str(i["row_number"] or ""),
                      i["file"] or "", i["status"], i["message"], i["reason"])
    console.print(table if items else "quarantine is empty")


def _resolve(item_id: int, status: str, reason: str, by: str | None) -> None:
    from bonebase.db import quarantine
    from bonebase.db.audit import current_actor
    from bonebase.db.engine import connect

    with connect(db_url()) as conn:
        quarantine.resolve(conn, item_id, status=status, reason=reason, actor=by or current_actor())
    console.print(f"quarantine item {item_id} {status}")


@quarantine_app.command("release")
def quarantine_release(
    item_id: Annotated[int, typer.Argument(help="Quarantine item id.")],
    reason: Annotated[str, typer.Option("--reason", help="What was fixed.")],
    by: Annotated[str | None, typer.Option("--by", help="Who releases it.")] = None,
) -> None:
    """Mark an item released after the site fixed it (the fixed file/row comes in a resubmission)."""
    _resolve(item_id, "released", reason, by)


@quarantine_app.command("discard")
def quarantine_discard(
    item_id: Annotated[int, typer.Argument(help="Quarantine item id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is discarded.")],
    by: Annotated[str | None, typer.Option("--by", help="Who discards it.")] = None,
) -> None:
    """Discard an item for good, with a recorded reason (its original bytes stay in quarantine)."""
    _resolve(item_id, "discarded", reason, by)
