"""`bonebase federated`: train the consortium's model with Flower at hospitals that keep their
images (#24). Imports nothing heavy at top level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console
from bonebase.federated.config import DEFAULTS
from bonebase.federated.options import (
    BnStatsOption,
    DpSideOption,
    KeepOptimizerOption,
    KeepRoundOption,
    LocalEpochsOption,
    RoundsOption,
    RoundsPerEpochOption,
    ServerLrOption,
    ServerMomentumOption,
    SetOption,
    StrategyOption,
)

federated_app = typer.Typer(
    help="Federated training with Flower: hospitals train on their own data, only model updates "
    "travel.",
    no_args_is_help=True,
)

# params.yaml train: keys a federated run takes over (the rest, e.g. epochs and patience, belong
# to central training: a federated run has rounds and local epochs instead).
TRAIN_KEYS = ("arch", "image_size", "batch_size", "lr", "weight_decay", "seed", "amp",
              "precise_bn", "num_workers")  # fmt: skip


def model_config(params: Path | None) -> dict:
    """Run-config keys from params.yaml's ``task`` and ``train:`` (the network of
    pipelines/train.py); {} without a file."""
    import yaml

    from bonebase.errors import ConfigError

    if params is None or not params.is_file():
        return {}
    raw = yaml.safe_load(params.read_text()) or {}
    train = raw.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{params}: train: must be a mapping")
    out = {k.replace("_", "-"): train[k] for k in TRAIN_KEYS if train.get(k) is not None}
    if "task" in raw:
        out["task"] = raw["task"]
    return out


@federated_app.command("run")
def run_cmd(
    sites: Annotated[str, typer.Option("--sites", help="Site codes, comma-separated: A,B,C.")],
    homes: Annotated[
        Path,
        typer.Option("--homes", help="Folder holding each site's BONEBASE_HOME as <CODE>/ "
                     "(its export in <CODE>/federated/data)."),
    ],
    rounds: RoundsOption = DEFAULTS["rounds"],
    strategy: StrategyOption = "fedavg",
    local_epochs: LocalEpochsOption = DEFAULTS["local-epochs"],
    proximal_mu: Annotated[
        float, typer.Option("--proximal-mu", help="FedProx's mu (with --strategy fedprox).")
    ] = 0.01,
    server_lr: ServerLrOption = 0.0,
    server_momentum: ServerMomentumOption = 0.9,
    bn_stats: BnStatsOption = "average",
    keep_round: KeepRoundOption = DEFAULTS["keep-round"],
    rounds_per_epoch: RoundsPerEpochOption = DEFAULTS["rounds-per-epoch"],
    keep_optimizer: KeepOptimizerOption = DEFAULTS["keep-optimizer"],
    dp_clip: Annotated[
        float, typer.Option("--dp-clip", help="Differential privacy: clipping norm of each "
                            "site's update (0: no DP).")
    ] = 0.0,
    dp_noise: Annotated[
        float, typer.Option("--dp-noise", help="Differential privacy: Gaussian noise multiplier.")
    ] = 0.0,
    dp_side: DpSideOption = "server",
    dp_delta: Annotated[
        float, typer.Option("--dp-delta", help="Differential privacy: the delta the run's "
                            "epsilon is accounted for.")
    ] = 1e-5,
    min_sites: Annotated[
        int, typer.Option("--min-sites", min=1, help="Fewest sites a round may complete with.")
    ] = 2,
    params: Annotated[
        Path, typer.Option("--params", help="params.yaml: task, train: (network, image size, "
                           "batch, lr) and evaluate: sections.")
    ] = Path("params.yaml"),
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval-data", help="The consortium's export with val, test and external "
                     "splits: the model is evaluated there (needed to register)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where model.pt, federated.json, "
                                      "metrics.json and report.html go.")] = Path("models/federated"),
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the model as a candidate.")
    ] = True,
    by: Annotated[str | None, typer.Option("--by", help="Who registers it.")] = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel-sites", min=1, help="Simulated sites training at "
                                 "the same time (default: one per site, at most the cores).")
    ] = None,
    set_: SetOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Flower's and Ray's log too.")] = False,
) -> None:
    """Federated training in Flower's simulation runtime on this machine: one simulated hospital
    per site, each reading only its own home; then evaluation on --eval-data and registration
    as a candidate (approve and deploy it with `bonebase models`)."""
    from bonebase.errors import ConfigError
    from bonebase.federated.options import OWN_OPTIONS, federation_config, set_values
    from bonebase.federated.simulation import simulate

    if register and eval_data is None:
        raise ConfigError(
            "registering needs the evaluation on the consortium's locked test set: give "
            "--eval-data DIR (an export with val/test/external splits), or --no-register"
        )
    overrides = {
        **model_config(params),
        **set_values(set_ or [], {**OWN_OPTIONS, "sites": "--sites", "homes": "--homes"}),
        "sites": sites, "homes": str(homes.absolute()), "rounds": rounds,
        "local-epochs": local_epochs,
        **federation_config(strategy=strategy, proximal_mu=proximal_mu, server_lr=server_lr,
                            server_momentum=server_momentum, bn_stats=bn_stats,
                            keep_round=keep_round, rounds_per_epoch=rounds_per_epoch,
                            keep_optimizer=keep_optimizer),
        "dp-clip": dp_clip, "dp-noise": dp_noise, "dp-side": dp_side, "dp-delta": dp_delta,
        "min-sites": min_sites,
        "out-dir": str(out.absolute()), "register": register, "by": by or "",
        "eval-data": str(eval_data.absolute()) if eval_data else "",
        "params": str(params.absolute()) if params.is_file() else "",
    }  # fmt: skip
    done = simulate(overrides, say=lambda line: console.print(line, markup=False, highlight=False),
                    verbose=verbose, actors=parallel)  # fmt: skip
    if "model_id" in done:
        console.print(
            f"next: bonebase models approve {done['model_id']} --by NAME, then "
            f"bonebase models deploy {done['model_id']} --by NAME"
        )


@federated_app.command("homes")
def homes_cmd(
    data: Annotated[Path, typer.Option("--from", help="An export (labels.csv, split.csv, "
                                       "images/), e.g. of `bonebase synth` data.")],
    dest: Annotated[Path, typer.Option("--to", help="Folder for the per-site homes.")],
    sites: Annotated[str, typer.Option("--sites", help="Site codes, comma-separated.")],
) -> None:
    """Cut one export into per-site homes (DEST/<CODE>/federated/data, that site's cases only)
    to try federated training on one machine."""
    from bonebase.federated.config import site_list
    from bonebase.federated.homes import partition_export

    for site, home in partition_export(data, dest, site_list(sites)).items():
        n = sum(1 for _ in (home / "federated" / "data" / "labels.csv").open()) - 1
        console.print(f"{site}: {home} ({n} images)")


@federated_app.command("prepare")
def prepare_cmd(
    version: Annotated[
        int | None, typer.Option("--version", help="Dataset version (default: the latest).")
    ] = None,
) -> None:
    """At a hospital: restore a dataset version of this home into BONEBASE_HOME/federated/data,
    the export its node trains on."""
    from bonebase.cli_common import db_url, settings
    from bonebase.dataset.versioning import checkout, default_target
    from bonebase.db.datasets import latest_version
    from bonebase.db.engine import connect
    from bonebase.errors import NotFoundError

    s, url = settings(), db_url()
    if version is None:
        with connect(url) as conn:
            row = latest_version(conn)
        if row is None:
            raise NotFoundError("this home has no dataset version: run `bonebase dataset "
                                "version` first")  # fmt: skip
        version = row.version
    dest = s.home / "federated" / "data"
    row, path = checkout(url, version, workspace=default_target(s).workspace, dest=dest)
    console.print(f"dataset version {row.version} ({row.n_images} images) ready in {path}")


@federated_app.command("show")
def show_cmd(model_id: int) -> None:
    """The federated lineage of a registered model: sites, rounds, strategy, privacy, each
    site's dataset version."""
    from bonebase.cli_common import db_and_store
    from bonebase.errors import NotFoundError
    from bonebase.federated.lineage import run_of

    conn, _ = db_and_store()
    with conn:
        row = run_of(conn, model_id)
    if row is None:
        raise NotFoundError(f"model {model_id} was not trained by a federated run")
    print(json.dumps(row, indent=2, default=str))


from bonebase.federated.deploy_cli import add_deploy_commands  # noqa: E402

add_deploy_commands(federated_app)
