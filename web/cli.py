"""`bonebase web` (serve the web database) and `bonebase users …` (its accounts).

Mount in bonebase/cli.py with ``from web.cli import register; register(app)``. Nothing heavy is
imported at module level, so `bonebase --help` stays fast.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from bonebase.cli_common import console
from bonebase.cli_common import db_url as _db_url

users_app = typer.Typer(help="Accounts of the web database: add, list, set a password, unlock.",
                        no_args_is_help=True)
PASSWORD_ENV = "BONEBASE_NEW_PASSWORD"


def _password(username: str) -> str:
    # Scripts pass it in the environment (never on the command line, where `ps` shows it).
    return os.environ.get(PASSWORD_ENV) or typer.prompt(
        f"password for {username}", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Lower-case user name, e.g. 'anna.li'.")],
    role: Annotated[str, typer.Option("--role", help="viewer, researcher, steward, admin or reader (reads its reader studies only).")],
    site: Annotated[str | None, typer.Option("--site", help="A steward's site code.")] = None,
) -> None:
    """Create a web user (the password is prompted, or read from BONEBASE_NEW_PASSWORD)."""
    from bonebase.db.engine import connect
    from bonebase.db.users import add_user

    with connect(_db_url()) as conn:
        user = add_user(conn, username=username, role=role, site=site,
                        password=_password(username))
    console.print(f"user {user.username} added ({user.role}{', ' + user.site if user.site else ''})")


@users_app.command("list")
def users_list() -> None:
    """List the web users."""
    from rich.table import Table

    from bonebase.db.engine import connect
    from bonebase.db.users import list_users

    with connect(_db_url()) as conn:
        users = list_users(conn)
    table = Table("user", "role", "site", "active")
    for u in users:
        table.add_row(u.username, u.role, u.site or "", "yes" if u.active else "no")
    console.print(table if users else "no users yet: `bonebase users add NAME --role admin`")


@users_app.command("set-password")
def users_set_password(username: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Replace a user's password (signs the user out everywhere)."""
    from bonebase.db.engine import connect
    from bonebase.db.users import set_password

    with connect(_db_url()) as conn:
        set_password(conn, username, _password(username))
    console.print(f"password of {username} changed; their sessions are closed")


@users_app.command("unlock")
def users_unlock(
    username: Annotated[str, typer.Argument(help="User name whose failed sign-ins to forget.")],
    address: Annotated[str | None, typer.Option(
        "--address", help="Also forget the failures from this client address.")] = None,
) -> None:
    """Lift a sign-in lockout now instead of at the end of its window."""
    from bonebase.config import get_settings
    from bonebase.db import audit, signins
    from bonebase.db.engine import connect
    from web.throttle import account_key, client_address, signin_key

    name = username.strip().lower()  # as the sign-in form normalises it
    key = account_key(signin_key(get_settings().consortium_secret()), name)
    with connect(_db_url()) as conn:
        forgotten = signins.clear_account(conn, key)
        if address:
            forgotten += signins.clear_address(conn, client_address(address))
        audit.record(conn, action="user.unlock", entity="user", entity_id=name,
                     details={"address": address, "failures": forgotten})
        conn.commit()
    console.print(f"sign-in of {name} unlocked ({forgotten} failed attempts forgotten)")


def web(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    open_data: Annotated[bool | None, typer.Option(
        "--open-data/--no-open-data",
        help="Let anonymous visitors browse de-identified cases (default: BONEBASE_OPEN_DATA).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes.")] = 1,
) -> None:
    """Serve the web database (cases, images, diagnosis, steward pages) over HTTP."""
    import uvicorn

    if open_data is not None:
        os.environ["BONEBASE_OPEN_DATA"] = "true" if open_data else "false"
    _db_url()  # fail here, with the one-line message, if the database is not ready
    console.print(f"bonebase web on http://{host}:{port}")
    uvicorn.run("web.app:app_from_settings", factory=True, host=host, port=port,
                workers=workers, reload=False, log_level="info")


def register(app: typer.Typer) -> None:
    """Add `web` and `users` to the `bonebase` command."""
    app.command("web")(web)
    app.add_typer(users_app, name="users")
