"""The run configuration of a federated training run, and what a hospital's node agreed to train.

Flower hands the ServerApp and every ClientApp the run's ``run_config`` (``flwr run --run-config``
or the ``[tool.flwr.app.config]`` table of a Flower App's pyproject.toml); :data:`DEFAULTS` lists
its keys. The server is the authority on the model: it sends :class:`ModelSpec` to the clients in
every round's ConfigRecord, and each client checks it against its own node before training.

Each hospital's node is a bonebase home (``node_config`` ``bonebase-home``, the site code
``site``): it trains on ``HOME/federated/data`` (the export contract: labels.csv, split.csv,
images/; ``bonebase dataset checkout N --to HOME/federated/data`` or ``bonebase federated
prepare``), and ``HOME/federated/node.yaml`` may pin the model it agreed to train (``task``,
``arch``, ``image_size``): a server asking for another is refused at the first round. In the
simulation runtime there is no node_config of our own: node ``partition-id`` i is the i-th code of
``sites`` and its home is ``homes/<code>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from bonebase.errors import ConfigError

STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi")
#: the server learning rate a server-side optimizer takes when ``server-lr`` is 0: FedAvgM's
#: 1.0 is Flower's default; FedAdam's and FedYogi's Flower default (0.1, a step of about 0.1 per
#: weight and round) is 100x the clients' lr here, so bonebase starts at the clients' scale
SERVER_LR = {"fedavgm": 1.0, "fedadam": 0.01, "fedyogi": 0.01}
BN_STATS = ("average", "pooled")
NODE_DIR = "federated"
NODE_FILE = "node.yaml"
NODE_KEYS = ("task", "arch", "image_size")

#: run_config keys and their defaults (Flower user config: bool, int, float or str).
DEFAULTS: dict[str, bool | int | float | str] = {
    # the model (the same network as pipelines/train.py; params.yaml's task and train section)
    "task": "benign_vs_malignant",
    "arch": "resnet18",
    "image-size": 160,
    "batch-size": 32,
    "lr": 1e-3,
    "weight-decay": 1e-4,
    "seed": 7,
    "precise-bn": True,
    "amp": True,
    "num-workers": 0,
    # the federation
    # The defaults are the best setting measured (docs/federated.md, Measured): 40 rounds of a
    # quarter epoch (10 epochs), each site keeping its optimizer, the last round kept.
    "rounds": 40,
    "local-epochs": 1,
    # rounds of a fraction of an epoch: each round trains 1/rounds-per-epoch of an epoch's
    # batches (local-epochs 1; rounds a multiple of it), the run rounds / rounds-per-epoch epochs
    "rounds-per-epoch": 4,
    # each site keeps its AdamW moments across rounds (in its node's state; nothing more leaves
    # the node) instead of a fresh optimizer every round
    "keep-optimizer": True,
    "strategy": "fedavg",
    "proximal-mu": 0.0,
    # server-side optimizers (fedavgm, fedadam, fedyogi): 0 takes SERVER_LR's value
    "server-lr": 0.0,
    "server-momentum": 0.9,  # FedAvgM's momentum
    # BatchNorm running statistics of the global model: "average" (the sites' statistics
    # averaged by training images, as every other array) or "pooled" (the variance of the
    # sites' data pooled: the average variance plus the spread of the sites' means)
    "bn-stats": "average",
    # the model kept: "best" (the round of the best weighted validation AUC) or "last"
    "keep-round": "last",
    "min-sites": 2,
    "round-timeout": 3600.0,
    # differential privacy with fixed clipping: dp-clip > 0 turns it on
    "dp-clip": 0.0,
    "dp-noise": 0.0,
    "dp-side": "server",
    "dp-delta": 1e-5,  # the δ the run's ε is accounted for (bonebase.federated.privacy)
    # simulation only: the sites in node order and the folder holding their homes
    "sites": "",
    "homes": "",
    # at the consortium, after the last round
    "out-dir": "models/federated",
    "eval-data": "",
    "params": "",
    "register": False,
    "by": "",
}


def merged(run_config: dict | None, overrides: dict | None = None) -> dict:
    """DEFAULTS, then ``run_config``, then ``overrides``; unknown keys are refused."""
    out = dict(DEFAULTS)
    for source in (run_config or {}, overrides or {}):
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise ConfigError(
                f"federated run config: unknown keys {unknown}; known: {', '.join(DEFAULTS)}"
            )
        out.update(source)
    check(out)
    return out


def check(cfg: dict) -> None:
    """Refuse values that cannot work, naming the key."""
    # here, not at the top: the CLI's options read this module's names without loading torch
    from bonebase.model.checkpoint import CLASS_NAMES
    from bonebase.model.networks import ARCHS

    if cfg["strategy"] not in STRATEGIES:
        raise ConfigError(f"strategy={cfg['strategy']!r}; choose one of {', '.join(STRATEGIES)}")
    if cfg["task"] not in CLASS_NAMES:
        raise ConfigError(f"task={cfg['task']!r}; choose one of {', '.join(CLASS_NAMES)}")
    if cfg["arch"] not in ARCHS:
        raise ConfigError(f"arch={cfg['arch']!r}; choose one of {', '.join(ARCHS)}")
    for key in ("rounds", "local-epochs", "rounds-per-epoch", "min-sites", "image-size",
                "batch-size"):
        if isinstance(cfg[key], bool) or int(cfg[key]) != cfg[key] or int(cfg[key]) < 1:
            raise ConfigError(f"{key}={cfg[key]!r}; it must be an integer >= 1")
    for key in ("proximal-mu", "dp-clip", "dp-noise", "server-lr"):
        if float(cfg[key]) < 0:
            raise ConfigError(f"{key}={cfg[key]!r}; it must be >= 0")
    parts, local = int(cfg["rounds-per-epoch"]), int(cfg["local-epochs"])
    if parts > 1 and local != 1:
        raise ConfigError(
            f"local-epochs={local} trains {local} epochs a round and rounds-per-epoch={parts} "
            f"1/{parts} of one: give rounds-per-epoch 1 with local-epochs, and rounds then counts "
            f"rounds of {local} epochs (e.g. rounds {max(1, 10 // local)} for "
            f"{max(1, 10 // local) * local} epochs)")
    if parts > 1 and int(cfg["rounds"]) % parts:
        raise ConfigError(
            f"rounds-per-epoch={parts} splits each epoch over {parts} rounds: it needs "
            f"rounds a multiple of {parts} "
            f"(asked {cfg['rounds']}), e.g. rounds {parts * max(1, int(cfg['rounds']) // parts)}; "
            "or rounds-per-epoch 1 for rounds of whole epochs")
    if not isinstance(cfg["keep-optimizer"], bool):
        raise ConfigError(f"keep-optimizer={cfg['keep-optimizer']!r}; it must be true or false")
    if cfg["strategy"] == "fedprox" and float(cfg["proximal-mu"]) <= 0:
        raise ConfigError("strategy fedprox needs proximal-mu > 0 (e.g. 0.01)")
    if not 0 <= float(cfg["server-momentum"]) < 1:
        raise ConfigError(f"server-momentum={cfg['server-momentum']!r}; it must be in [0, 1)")
    # a server option the strategy would ignore is a mistake in the run, not a no-op
    if float(cfg["server-lr"]) > 0 and cfg["strategy"] not in SERVER_LR:
        raise ConfigError(f"server-lr={cfg['server-lr']!r} but strategy {cfg['strategy']} has "
                          f"no server optimizer: choose one of {', '.join(SERVER_LR)}, or leave "
                          "server-lr at 0")  # fmt: skip
    if (float(cfg["server-momentum"]) != DEFAULTS["server-momentum"]
            and cfg["strategy"] != "fedavgm"):  # fmt: skip
        raise ConfigError(f"server-momentum={cfg['server-momentum']!r} is FedAvgM's: give it "
                          f"with strategy fedavgm (asked: {cfg['strategy']})")
    if cfg["keep-round"] not in ("best", "last"):
        raise ConfigError(f"keep-round={cfg['keep-round']!r}; choose best or last")
    if cfg["bn-stats"] not in BN_STATS:
        raise ConfigError(f"bn-stats={cfg['bn-stats']!r}; choose one of {', '.join(BN_STATS)}")
    if float(cfg["dp-clip"]) > 0 and (cfg["strategy"] in SERVER_LR
                                      or cfg["bn-stats"] != "average"):  # fmt: skip
        raise ConfigError(f"differential privacy works with fedavg or fedprox and bn-stats "
                          f"average only (asked: {cfg['strategy']}, bn-stats {cfg['bn-stats']})")
    if cfg["dp-side"] not in ("server", "client"):
        raise ConfigError(f"dp-side={cfg['dp-side']!r}; choose server or client")
    if float(cfg["dp-clip"]) > 0 and float(cfg["dp-noise"]) <= 0:
        raise ConfigError("dp-clip is set but dp-noise is 0: give the noise multiplier too")
    if not 0 < float(cfg["dp-delta"]) < 1:
        raise ConfigError(f"dp-delta={cfg['dp-delta']!r}; it must be in (0, 1), e.g. 1e-5 (below "
                          "1 / the number of sites)")  # fmt: skip


def site_list(value: str) -> list[str]:
    """``"A,B,C"`` → ``["A", "B", "C"]``; duplicates and empty codes refused."""
    sites = [s.strip() for s in str(value).split(",") if s.strip()]
    if len(set(sites)) != len(sites):
        raise ConfigError(f"sites={value!r} names a site twice")
    return sites


#: What a node accepts from the server's round configuration (ModelSpec.from_config).
NODE_LIMITS = {"image_size": (16, 1024), "batch_size": (1, 512), "local_epochs": (1, 100),
               "num_workers": (0, 32), "lr": (0.0, 1.0), "rounds": (1, 10_000),
               "rounds_per_epoch": (1, 100)}


@dataclass(frozen=True)
class ModelSpec:
    """What the server asks every client to train, sent in each round's ConfigRecord."""

    task: str
    arch: str
    image_size: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    precise_bn: bool
    amp: bool
    num_workers: int
    local_epochs: int
    proximal_mu: float
    rounds: int  # the run's rounds: each round trains its share of one cosine lr schedule
    rounds_per_epoch: int  # > 1: a round trains that fraction of an epoch (local_epochs 1)
    keep_optimizer: bool  # the site's AdamW state carried across rounds, at the site

    @property
    def epochs(self) -> int:
        """The run's epochs: one cosine lr schedule over them (as centralised training's)."""
        return self.rounds * self.local_epochs // self.rounds_per_epoch

    @classmethod
    def from_run_config(cls, cfg: dict) -> ModelSpec:
        return cls(
            task=str(cfg["task"]), arch=str(cfg["arch"]), image_size=int(cfg["image-size"]),
            batch_size=int(cfg["batch-size"]), lr=float(cfg["lr"]),
            weight_decay=float(cfg["weight-decay"]), seed=int(cfg["seed"]),
            precise_bn=bool(cfg["precise-bn"]), amp=bool(cfg["amp"]),
            num_workers=int(cfg["num-workers"]), local_epochs=int(cfg["local-epochs"]),
            proximal_mu=float(cfg["proximal-mu"]) if cfg["strategy"] == "fedprox" else 0.0,
            rounds=int(cfg["rounds"]), rounds_per_epoch=int(cfg["rounds-per-epoch"]),
            keep_optimizer=bool(cfg["keep-optimizer"]),
        )  # fmt: skip

    def to_config(self) -> dict:
        """As ConfigRecord values (``spec-`` keys; FedProx adds its own ``proximal-mu``)."""
        return {f"spec-{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_config(cls, record) -> ModelSpec:
        fields = cls.__dataclass_fields__
        missing = [k for k in fields if f"spec-{k}" not in record]
        if missing:
            raise ConfigError(
                f"the server's round configuration lacks {missing}: the server runs another "
                "version of bonebase; update both to the same release"
            )
        unknown = sorted(k[len("spec-"):] for k in record
                         if k.startswith("spec-") and k[len("spec-"):] not in fields)  # fmt: skip
        if unknown:  # a newer server: training without them would not be what it asks for
            raise ConfigError(
                f"the server asks for settings this node's bonebase does not know ({', '.join(unknown)}): "
                "the server runs a newer release; update bonebase at the hospital"
            )
        cast = {"str": str, "int": int, "float": float, "bool": bool}
        spec = cls(**{k: cast[f.type](record[f"spec-{k}"]) for k, f in fields.items()})
        # A hospital's node does not take any amount of work from the server: what no sane
        # run asks for (a misconfigured or hostile server) is refused before training.
        for name, (low, high) in NODE_LIMITS.items():
            value = getattr(spec, name)
            if not low <= value <= high:
                raise ConfigError(f"the server asks for {name}={value}; this node trains with "
                                  f"{low} to {high}")
        return spec


@dataclass(frozen=True)
class Node:
    """One hospital's node: its site code, its bonebase home and its local export."""

    site: str
    home: Path
    data: Path

    def agreement(self) -> dict:
        """``HOME/federated/node.yaml``: the model this hospital agreed to train ({} if none)."""
        path = self.home / NODE_DIR / NODE_FILE
        if not path.is_file():
            return {}
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}); fix or remove it") from None
        if not isinstance(raw, dict) or set(raw) - set(NODE_KEYS):
            raise ConfigError(f"{path}: a mapping of {', '.join(NODE_KEYS)} only")
        return raw


def locate_node(node_config: dict, cfg: dict) -> Node:
    """The node this ClientApp runs on (see the module doc)."""
    if "bonebase-home" in node_config:
        home = Path(str(node_config["bonebase-home"])).expanduser()
        site = str(node_config.get("site") or home.name)
    elif "partition-id" in node_config:
        sites = site_list(cfg["sites"])
        pid = int(node_config["partition-id"])
        if not cfg["homes"] or pid >= len(sites):
            raise ConfigError(
                f"simulated node {pid} has no site: the run config needs sites (one code per "
                "node) and homes (the folder holding each site's home)"
            )
        site, home = sites[pid], Path(str(cfg["homes"])) / sites[pid]
    else:
        raise ConfigError(
            "this SuperNode has no bonebase home: start it with --node-config "
            "\"bonebase-home='/path/to/home' site='CODE'\""
        )
    data = node_config.get("data-dir") or home / NODE_DIR / "data"
    return Node(site=site, home=home, data=Path(str(data)))
