"""`bonebase import`: load a public dataset (#20)."""

from __future__ import annotations

import typer

import_app = typer.Typer(help="Import a public dataset (BTXRD) as submissions of its centres.",
                         no_args_is_help=True)
