"""`bonebase secret …`: make a consortium key (mounted by bonebase.cli)."""

from __future__ import annotations

import typer

secret_app = typer.Typer(help="The consortium pseudonymisation key.", no_args_is_help=True)


@secret_app.command("generate")
def generate_cmd() -> None:
    """Print a new random key (64 characters, 384 bits) for BONEBASE_SECRET. Give the same key
    to every site's installation of one consortium; keep it out of files others can read."""
    from bonebase.secret_key import generate

    print(generate())
