"""`bonebase federated certs | server | client | start`: the real deployment (docs/federated.md,
'Deployment'). `add_deploy_commands(federated_app)` puts them on the `bonebase federated` group.
Imports nothing heavy at top level."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console, err
from bonebase.errors import BonebaseError, InputError
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
    federation_config,
    set_values,
)


def _certs_or_insecure(certs: Path | None, insecure: bool):
    from bonebase.federated.tls import certificates_in

    if insecure:
        if certs is not None:
            raise InputError("--insecure and --certs exclude each other: choose one.")
        err.print("[yellow]--insecure: model updates travel unencrypted; for a trial on one "
                  "machine only.[/yellow]")
        return None
    if certs is None:
        raise InputError("give --certs DIR (ca.crt, server.pem, server.key; `bonebase federated "
                         "certs` makes them), or --insecure for a trial on one machine.")
    return certificates_in(certs)


def certs(
    out: Annotated[Path, typer.Option("--out", help="Folder for ca.crt, ca.key, server.pem, "
                                      "server.key (created; existing files are never replaced).")],
    host: Annotated[list[str], typer.Option("--host", help="A name or IP address the hospitals "
                                            "use to reach the server; repeat for several.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 365,
) -> None:
    """Make a consortium CA and the SuperLink's TLS certificate (for trials; production uses the
    consortium's own PKI). Give hospitals ca.crt only; ca.key and server.key stay here."""
    from bonebase.federated.tls import make_certificates

    # `bonebase federated start` on the server itself dials the Control API on 127.0.0.1.
    hosts = [*host, *(["127.0.0.1"] if "127.0.0.1" not in host else [])]
    made = make_certificates(out, hosts=hosts, days=days)
    console.print(f"CA certificate (give it to every hospital): {made.ca}")
    console.print(f"server certificate valid for: {', '.join(hosts)}")
    console.print(f"server certificate and key (for `bonebase federated server --certs {out}`): "
                  f"{made.server_cert}, {made.server_key}")


def server(
    certs_dir: Annotated[Path | None, typer.Option("--certs", help="Folder with ca.crt, "
                                                   "server.pem and server.key.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS (a trial on one machine "
                                           "only).")] = False,
    fleet: Annotated[str, typer.Option("--fleet", help="Fleet API address the hospitals' "
                                       "SuperNodes dial (open this port to them).")
                     ] = "0.0.0.0:9092",
    control: Annotated[str, typer.Option("--control", help="Control API address `bonebase "
                                         "federated start` uses.")] = "127.0.0.1:9093",
    serverappio: Annotated[str, typer.Option("--serverappio", help="ServerAppIo API address "
                                             "(this machine only).")] = "127.0.0.1:9091",
    state: Annotated[Path | None, typer.Option("--state", help="Folder for the SuperLink's "
                                               "state (default BONEBASE_HOME/federated/superlink)."
                                               )] = None,
) -> None:
    """Run the consortium's Flower SuperLink in the foreground (Ctrl-C stops it).

    Hospitals connect with `bonebase federated client`; a run starts with `bonebase federated
    start`, and its ServerApp runs here, with this BONEBASE_HOME (its registry, its locked test
    sets). Runs and connected nodes survive a restart: SuperNodes reconnect by themselves."""
    from bonebase.cli_common import settings
    from bonebase.federated import deploy
    from bonebase.federated.processes import serve_foreground

    s = settings()
    home = s.home.resolve()
    spec = deploy.SuperLinkSpec(
        state_dir=(state or home / "federated" / "superlink").resolve(),
        certificates=_certs_or_insecure(certs_dir, insecure),
        fleet=deploy.parse_address(fleet, default_port=deploy.FLEET_PORT, what="--fleet"),
        control=deploy.parse_address(control, default_port=deploy.CONTROL_PORT, what="--control"),
        serverappio=deploy.parse_address(serverappio, default_port=deploy.SERVERAPPIO_PORT,
                                         what="--serverappio"),
    )
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    env = deploy.flower_env(spec.state_dir / "flwr")
    env["BONEBASE_HOME"] = str(home)  # the ServerApp registers models in this home
    console.print(f"SuperLink: hospitals dial {deploy.joined(spec.fleet)} (Fleet API), runs are "
                  f"started on {deploy.joined(spec.control)} (Control API); state in "
                  f"{spec.state_dir}; TLS {'off' if spec.certificates is None else 'on'}")
    raise typer.Exit(serve_foreground("SuperLink", spec.command(), cwd=spec.state_dir,
                                             env=env))


def client(
    site: Annotated[str, typer.Option("--site", help="This hospital's site code (e.g. HX).")],
    server_address: Annotated[str, typer.Option("--server", help="The consortium's Fleet API, "
                                                "HOST:PORT (e.g. fl.consortium.org:9092).")],
    ca: Annotated[Path | None, typer.Option("--ca", help="The consortium's ca.crt (TLS).")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS (a trial on one machine "
                                           "only).")] = False,
    clientappio: Annotated[str, typer.Option("--clientappio", help="Local ClientAppIo API "
                                             "address (this machine only).")] = "127.0.0.1:9094",
    max_wait: Annotated[float | None, typer.Option("--max-wait", help="Give up after this many "
                                                   "seconds without the server (default: keep "
                                                   "trying).")] = None,
) -> None:
    """Run this hospital's Flower SuperNode in the foreground (Ctrl-C stops it).

    It trains on BONEBASE_HOME/federated/data of this hospital's home and sends only model
    weights and metrics. It dials out to the server: the hospital opens no inbound port."""
    from bonebase.cli_common import settings
    from bonebase.federated import deploy
    from bonebase.federated.processes import serve_foreground

    if insecure == (ca is not None):
        raise InputError("give --ca ca.crt (the consortium's CA certificate), or --insecure for "
                         "a trial on one machine.")
    if ca is not None and not ca.is_file():
        raise InputError(f"--ca {ca}: no such file; ask the consortium for its ca.crt.")
    home = settings().home.resolve()
    if not (home / "federated" / "data" / "labels.csv").is_file():
        err.print(f"[yellow]{home}/federated/data has no export yet: this node will be left out "
                  "of runs until `bonebase dataset checkout N --to "
                  f"{home}/federated/data` puts one there.[/yellow]")
    spec = deploy.SuperNodeSpec(
        site=site, home=home, ca=ca.resolve() if ca else None, max_wait_s=max_wait,
        server=deploy.parse_address(server_address, default_port=deploy.FLEET_PORT,
                                    what="--server"),
        clientappio=deploy.parse_address(clientappio, default_port=deploy.CLIENTAPPIO_PORT,
                                         what="--clientappio"),
    )
    state = home / "federated" / "supernode"
    console.print(f"SuperNode {site}: dialling {deploy.joined(spec.server)}, training on {home}")
    raise typer.Exit(serve_foreground(f"SuperNode {site}", spec.command(), cwd=state,
                                             env=deploy.flower_env(state / "flwr")))


def start(
    rounds: RoundsOption = DEFAULTS["rounds"],
    local_epochs: LocalEpochsOption = DEFAULTS["local-epochs"],
    strategy: StrategyOption = "fedavg",
    proximal_mu: Annotated[float, typer.Option("--proximal-mu", help="FedProx's mu (with "
                                               "--strategy fedprox).")] = 0.01,
    server_lr: ServerLrOption = 0.0,
    server_momentum: ServerMomentumOption = 0.9,
    bn_stats: BnStatsOption = "average",
    keep_round: KeepRoundOption = DEFAULTS["keep-round"],
    rounds_per_epoch: RoundsPerEpochOption = DEFAULTS["rounds-per-epoch"],
    keep_optimizer: KeepOptimizerOption = DEFAULTS["keep-optimizer"],
    min_sites: Annotated[int, typer.Option("--min-sites", min=1, help="Hospitals the server "
                                           "waits for, and the fewest a round may end with.")] = 2,
    dp_clip: Annotated[float, typer.Option("--dp-clip", help="Differential privacy: clipping "
                                           "norm of each site's update (0: no DP).")] = 0.0,
    dp_noise: Annotated[float, typer.Option("--dp-noise", help="Differential privacy: Gaussian "
                                            "noise multiplier.")] = 0.0,
    dp_side: DpSideOption = "server",
    dp_delta: Annotated[float, typer.Option("--dp-delta", help="Differential privacy: the delta "
                                            "the run's epsilon is accounted for.")] = 1e-5,
    params: Annotated[Path, typer.Option("--params", help="params.yaml: task, train: (network, "
                                         "image size, batch, lr) and evaluate: sections.")
                      ] = Path("params.yaml"),
    eval_data: Annotated[Path | None, typer.Option("--eval-data", help="The consortium's export "
                                                   "with the locked test and external sets "
                                                   "(needed to register).")] = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register the "
                                           "model as a candidate.")] = True,
    by: Annotated[str, typer.Option("--by", help="Who starts the run (recorded).")] = "",
    out_dir: Annotated[Path, typer.Option("--out", help="Where the server writes model.pt, "
                                          "federated.json, metrics.json, report.html.")
                       ] = Path("models/federated"),
    set_: SetOption = None,
    control: Annotated[str, typer.Option("--control", help="The SuperLink's Control API.")
                       ] = "127.0.0.1:9093",
    ca: Annotated[Path | None, typer.Option("--ca", help="The consortium's ca.crt.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS (trials only).")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop following the run "
                                                  "after this many seconds.")] = None,
) -> None:
    """Start a federated training run on the SuperLink (`flwr run` of bonebase's Flower App)
    and follow its log to the end; exit non-zero when it fails. The same options as `bonebase
    federated run`, whose simulation it replaces with the hospitals' real SuperNodes."""
    import tempfile

    from bonebase.errors import ConfigError
    from bonebase.federated import deploy
    from bonebase.federated.cli import model_config

    if insecure == (ca is not None):
        raise InputError("give --ca ca.crt, or --insecure for a trial on one machine.")
    if register and eval_data is None:
        raise ConfigError("registering needs the evaluation on the consortium's locked test set: "
                          "give --eval-data DIR, or --no-register")
    config = {
        **model_config(params),
        **set_values(set_ or []),
        "rounds": rounds, "local-epochs": local_epochs, "min-sites": min_sites,
        **federation_config(strategy=strategy, proximal_mu=proximal_mu, server_lr=server_lr,
                            server_momentum=server_momentum, bn_stats=bn_stats,
                            keep_round=keep_round, rounds_per_epoch=rounds_per_epoch,
                            keep_optimizer=keep_optimizer),
        "dp-clip": dp_clip, "dp-noise": dp_noise, "dp-side": dp_side, "dp-delta": dp_delta,
        "register": register, "by": by, "out-dir": str(out_dir.resolve()),
        "eval-data": str(eval_data.resolve()) if eval_data else "",
        "params": str(params.resolve()) if params.is_file() else "",
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bonebase-flwr-") as tmp:
        app = deploy.write_flower_app(Path(tmp) / "app", config)
        deploy.write_flower_config(
            Path(tmp) / "flwr",
            control=deploy.parse_address(control, default_port=deploy.CONTROL_PORT,
                                         what="--control"),
            ca=ca.resolve() if ca else None)
        outcome = deploy.run_app(app, flwr_home=Path(tmp) / "flwr", timeout_s=timeout,
                                 echo=lambda line: console.print(line, markup=False,
                                                                 highlight=False))
    if not outcome.ok:
        raise BonebaseError(f"federated run {outcome.run_id}: {outcome.status} "
                            f"{outcome.details}".strip() + "; its log is above.")
    console.print(f"federated run {outcome.run_id}: {outcome.status}")


def add_deploy_commands(app: typer.Typer) -> None:
    """Put `certs`, `server`, `client` and `start` on `app` (the `bonebase federated` group)."""
    app.command("certs")(certs)
    app.command("server")(server)
    app.command("client")(client)
    app.command("start")(start)
