"""The ServerApp: the consortium runs the rounds, then keeps the model like any other candidate.

It starts every site from the same freshly initialised network (seed ``seed``), runs ``rounds``
rounds of the strategy (:mod:`bonebase.federated.strategy`), and turns the global model it
keeps (``keep-round``: ``last``, the default, the final round's; ``best``, the round with the
best validation AUC weighted by the sites' validation cases, as ``pipelines/train.py`` keeps
its best epoch: :meth:`SiteWatch.kept`) into a bonebase checkpoint whose
``train_params["federated"]`` holds the lineage: sites, rounds, strategy, privacy parameters,
each site's dataset version, excluded and dropped sites, sites whose kept optimizer was lost,
the per-round history and the round kept. The threshold is that round's sites' validation Youden
points averaged by case count.
``out-dir`` receives model.pt and federated.json; with ``eval-data`` (the consortium's export
holding the locked test and external sets) the evaluation stage's own function writes
metrics.json and report.html next to them, and with ``register`` the candidate is registered
(:mod:`bonebase.federated.lineage`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from bonebase.errors import BonebaseError
from bonebase.federated.config import SERVER_LR, ModelSpec, merged, site_list
from bonebase.federated.strategy import SiteWatch, build_strategy
from bonebase.model.checkpoint import Checkpoint, code_revision, save_checkpoint, task_classes
from bonebase.model.networks import build_network


def privacy_of(cfg: dict, rounds: list[dict] | None = None) -> dict:
    """The privacy parameters recorded with the model; with DP, the ε spent over ``rounds``
    (SiteWatch's) for the run's δ (:mod:`bonebase.federated.privacy`)."""
    from bonebase.federated.privacy import run_accounting

    dp = float(cfg["dp-clip"]) > 0
    return {
        "differential_privacy": (
            {"mechanism": "gaussian", "clipping": "fixed", "side": cfg["dp-side"],
             "clipping_norm": float(cfg["dp-clip"]), "noise_multiplier": float(cfg["dp-noise"]),
             **run_accounting(cfg, rounds or [])}
            if dp else None
        ),
        # Flower 1.32's SecAgg+ workflow drives the legacy strategies only, not the Message API
        # strategies used here: updates reach the server in the clear (over TLS when deployed).
        "secure_aggregation": None,
    }  # fmt: skip


def federated_version(datasets: dict[str, str]) -> str:
    """One text naming every site's data: ``fed:A=v3:abc…;B=…`` (the registry's column)."""
    return "fed:" + ";".join(f"{site}={version}" for site, version in sorted(datasets.items()))


def run_federation(grid: Grid, cfg: dict, *, say: Callable[[str], None] = print) -> Checkpoint:
    """The rounds, and the checkpoint of the final global model."""
    spec = ModelSpec.from_run_config(cfg)
    sites = site_list(cfg["sites"]) if cfg["sites"] else []
    n_sites = len(sites) or int(cfg["min-sites"])
    torch.manual_seed(spec.seed)
    net = build_network(spec.arch, num_classes=len(task_classes(spec.task)))
    reference = {k: v.numpy() for k, v in net.state_dict().items()}
    watch = SiteWatch(
        build_strategy(cfg, n_sites),
        min_sites=min(int(cfg["min-sites"]), n_sites),
        reference=reference,
        say=say,
        bn_stats=str(cfg["bn-stats"]),
    )
    say(
        f"federated training: {cfg['strategy']} over {n_sites} sites, {cfg['rounds']} rounds of "
        + (f"1/{spec.rounds_per_epoch} local epoch" if spec.rounds_per_epoch > 1
           else f"{spec.local_epochs} local epoch(s)")
        + (" (sites keep their optimizer state)" if spec.keep_optimizer else "")
        + f", {spec.arch} at {spec.image_size} px, task {spec.task}"
    )
    config = spec.to_config()
    result = watch.start(
        grid,
        initial_arrays=ArrayRecord(net.state_dict()),
        num_rounds=int(cfg["rounds"]),
        timeout=float(cfg["round-timeout"]),
        train_config=ConfigRecord(dict(config)),
        evaluate_config=ConfigRecord(dict(config)),
    )
    kept = watch.kept(str(cfg["keep-round"]), result.arrays, int(cfg["rounds"]))
    last = kept["evaluate_mean"]
    threshold = float(last["threshold"]) if len(task_classes(spec.task)) == 2 and last else None
    export_sizes = Counter(int(v["export-size"]) for v in watch.exports.values())
    lineage = {
        "sites": sorted(watch.datasets),
        "sites_asked": sites,
        "rounds": int(cfg["rounds"]),
        "local_epochs": spec.local_epochs,
        "rounds_per_epoch": spec.rounds_per_epoch,
        "keep_optimizer": spec.keep_optimizer,
        "strategy": cfg["strategy"],
        "proximal_mu": spec.proximal_mu,
        "server_optimizer": (
            {
                "server_lr": float(cfg["server-lr"]) or SERVER_LR[cfg["strategy"]],
                **(
                    {"server_momentum": float(cfg["server-momentum"])}
                    if cfg["strategy"] == "fedavgm"
                    else {}
                ),
            }
            if cfg["strategy"] in SERVER_LR
            else None
        ),
        "bn_stats": cfg["bn-stats"],
        "keep_round": cfg["keep-round"],
        "min_sites": int(cfg["min-sites"]),
        "privacy": privacy_of(cfg, watch.rounds),
        "site_datasets": dict(sorted(watch.datasets.items())),
        "excluded": watch.excluded,
        "dropped": watch.dropped,
        "optimizer_resets": watch.optimizer_resets,
        "framework": f"flwr {_flwr_version()}",
        "rounds_detail": watch.rounds,
        "selected_round": kept["round"],
        "lr_schedule": f"cosine over {spec.epochs} epochs",
    }
    params = {k: v for k, v in vars(spec).items()
              if k not in ("local_epochs", "proximal_mu", "rounds", "rounds_per_epoch",
                           "keep_optimizer")}  # fmt: skip
    return Checkpoint(
        arch=spec.arch,
        task=spec.task,
        image_size=spec.image_size,
        state_dict=kept["arrays"].to_torch_state_dict(),
        threshold=threshold,
        train_params={**params, "federated": lineage},
        dataset_version=federated_version(watch.datasets),
        code_revision=code_revision(),
        history=watch.history(),
        export_size=export_sizes.most_common(1)[0][0] if export_sizes else None,
    )


def _flwr_version() -> str:
    import flwr

    return flwr.__version__


def finish(ckpt: Checkpoint, cfg: dict, *, say: Callable[[str], None] = print) -> dict:
    """model.pt and federated.json into ``out-dir``; evaluation and registration when asked.
    Returns what was written (paths, the registered model's id)."""
    from bonebase.federated import lineage

    out = Path(str(cfg["out-dir"]))
    model = save_checkpoint(ckpt, out / "model.pt")
    record = {**ckpt.train_params["federated"], "history": ckpt.history}
    (out / "federated.json").write_text(
        json.dumps(lineage.finite(record), indent=2, default=str, allow_nan=False) + "\n")
    done: dict = {"model": str(model), "lineage": str(out / "federated.json")}
    say(f"federated model: {model}")
    if cfg["eval-data"]:
        done.update(lineage.evaluate_at_consortium(model, cfg, out))
        say(f"evaluated on {cfg['eval-data']}: {done['metrics']}")
    if cfg["register"]:
        row = lineage.register_run(model, out, by=str(cfg["by"]) or None)
        done["model_id"] = row["id"]
        say(f"registered as candidate model {row['id']} (bonebase models show {row['id']})")
    return done


def make_server_app(
    overrides: dict | None = None,
    *,
    say: Callable[[str], None] = print,
    outcome: dict | None = None,
) -> ServerApp:
    """A ServerApp whose run config is DEFAULTS < run_config < ``overrides``. With ``outcome``
    (the simulation's), a refused or failed run is reported there instead of raised."""
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            cfg = merged(context.run_config, overrides)
            done = finish(run_federation(grid, cfg, say=say), cfg, say=say)
        except BonebaseError as exc:
            if outcome is None:
                raise
            outcome["error"] = exc
            return
        if outcome is not None:
            outcome.update(done)

    return server


#: The Flower App's ServerApp (``bonebase.federated.server:app``).
app = make_server_app()
