"""`bonebase federated`: train the consortium's model with Flower at hospitals that keep their
images (#24). Imports nothing heavy at top level."""

from __future__ import annotations

import typer

federated_app = typer.Typer(
    help="Federated training with Flower: hospitals train on their own data, only model updates "
    "travel.",
    no_args_is_help=True,
)
