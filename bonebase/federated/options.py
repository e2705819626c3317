"""The strategy options `bonebase federated run` and `start` share, and `--set KEY=VALUE`: both
commands turn them into the same run-config keys (:data:`bonebase.federated.config.DEFAULTS`)
with :func:`federation_config`, and :func:`set_values` refuses a `--set` of a key that has an
option of its own, so one value never silently overrides the other."""

from __future__ import annotations

from typing import Annotated

import click
import typer

from bonebase.errors import InputError
from bonebase.federated.config import BN_STATS, DEFAULTS, SERVER_LR, STRATEGIES

_OPTIMIZERS = ", ".join(SERVER_LR)
_DEFAULT_LRS = ", ".join(f"{lr:g} for {name}" for name, lr in SERVER_LR.items())

StrategyOption = Annotated[str, typer.Option(
    "--strategy", click_type=click.Choice(STRATEGIES),
    help="fedavg: the sites' updates averaged by training images; fedprox: FedProx (see "
    f"--proximal-mu); {_OPTIMIZERS}: a server-side optimizer steps the global model along that "
    "average (see --server-lr; no gain over fedavg established, docs/federated.md).")]
ServerLrOption = Annotated[float, typer.Option(
    "--server-lr", min=0.0,
    help=f"Server learning rate of {_OPTIMIZERS} (refused with the others); 0 takes "
    f"{_DEFAULT_LRS}.")]
ServerMomentumOption = Annotated[float, typer.Option(
    "--server-momentum", click_type=click.FloatRange(0.0, 1.0, max_open=True),
    help="FedAvgM's server momentum, in [0, 1) (with --strategy fedavgm only).")]
BnStatsOption = Annotated[str, typer.Option(
    "--bn-stats", click_type=click.Choice(BN_STATS),
    help="The global model's BatchNorm running statistics: average (the sites' averaged by "
    "training images) or pooled (those of the sites' data taken together: the average variance "
    "plus the spread of the sites' means). pooled does not combine with differential privacy.")]
KeepRoundOption = Annotated[str, typer.Option(
    "--keep-round", click_type=click.Choice(("best", "last")),
    help="The model kept: best (the global model of the round with the best validation AUC, "
    "weighted by the sites' validation cases) or last (the final round's).")]
RoundsOption = Annotated[int, typer.Option(
    "--rounds", min=1,
    help="Federated rounds; with --rounds-per-epoch N the run trains rounds/N epochs.")]
LocalEpochsOption = Annotated[int, typer.Option(
    "--local-epochs", min=1,
    help="Epochs each site trains per round, with --rounds-per-epoch 1 (rounds of whole "
    "epochs); --rounds then counts rounds of that many epochs.")]
RoundsPerEpochOption = Annotated[int, typer.Option(
    "--rounds-per-epoch", min=1, max=100,
    help="Rounds of a fraction of an epoch: each round a site trains 1/N of an epoch's batches "
    "(N rounds cover each epoch once; needs --local-epochs 1 and --rounds a multiple of N; the "
    "run trains rounds/N epochs). More, shorter rounds let sites drift apart less.")]
KeepOptimizerOption = Annotated[bool, typer.Option(
    "--keep-optimizer/--fresh-optimizer",
    help="Each site keeps its AdamW moments from one round to the next, at the site (only the "
    "model's weights leave it, as always), instead of a fresh optimizer every round.")]
DpSideOption = Annotated[str, typer.Option(
    "--dp-side", click_type=click.Choice(("server", "client")),
    help="Differential privacy: where each site's update is clipped, at the server or at the "
    "site (the server never sees an unclipped update).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Any other run-config key, KEY=VALUE (e.g. arch=resnet18-slim); keys with an "
    "option of their own are refused.")]

#: run-config keys `run` and `start` set from options of their own, and those options
OWN_OPTIONS = {
    "rounds": "--rounds", "local-epochs": "--local-epochs", "strategy": "--strategy",
    "proximal-mu": "--proximal-mu", "server-lr": "--server-lr",
    "server-momentum": "--server-momentum", "bn-stats": "--bn-stats",
    "keep-round": "--keep-round", "rounds-per-epoch": "--rounds-per-epoch",
    "keep-optimizer": "--keep-optimizer/--fresh-optimizer", "min-sites": "--min-sites", "dp-clip": "--dp-clip",
    "dp-noise": "--dp-noise", "dp-side": "--dp-side", "dp-delta": "--dp-delta",
    "params": "--params", "eval-data": "--eval-data", "register": "--register/--no-register",
    "by": "--by", "out-dir": "--out",
}  # fmt: skip


def federation_config(
    *, strategy: str, proximal_mu: float, server_lr: float, server_momentum: float,
    bn_stats: str, keep_round: str, rounds_per_epoch: int = DEFAULTS["rounds-per-epoch"],
    keep_optimizer: bool = DEFAULTS["keep-optimizer"],
) -> dict:
    """The run-config keys of the strategy and local-training options (FedProx's mu only with
    fedprox)."""
    return {
        "strategy": strategy, "proximal-mu": proximal_mu if strategy == "fedprox" else 0.0,
        "server-lr": server_lr, "server-momentum": server_momentum, "bn-stats": bn_stats,
        "keep-round": keep_round, "rounds-per-epoch": rounds_per_epoch,
        "keep-optimizer": keep_optimizer,
    }  # fmt: skip


def set_values(values: list[str], own: dict[str, str] = OWN_OPTIONS) -> dict:
    """`--set KEY=VALUE` items, each VALUE read as the type of KEY's default; a key in ``own``
    (run-config key → the command's option for it) is refused."""
    out: dict = {}
    for item in values:
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep:
            raise InputError(f"--set {item!r}: write KEY=VALUE (e.g. --set lr=0.0005).")
        if key not in DEFAULTS:
            raise InputError(f"--set {key}: not a run-config key; known: {', '.join(DEFAULTS)}")
        if key in own:
            raise InputError(f"--set {item!r}: {key} has an option of its own; give "
                             f"{own[key]} instead.")  # fmt: skip
        kind = type(DEFAULTS[key])
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                out[key] = raw.lower() in ("true", "1", "yes")
            else:
                out[key] = kind(raw)
        except ValueError:
            raise InputError(f"--set {item!r}: {key} takes a {kind.__name__} (default "
                             f"{DEFAULTS[key]!r}).") from None
    return out
