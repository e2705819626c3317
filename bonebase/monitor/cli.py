"""`bonebase monitor`: the champion watch (#23)."""

from __future__ import annotations

import typer

monitor_app = typer.Typer(help="How the deployed model does on each site's new data: performance, "
                          "drift and alerts.", no_args_is_help=True)
