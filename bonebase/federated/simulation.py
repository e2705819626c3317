"""Flower's simulation runtime on one machine: each simulated hospital reads its own home.

``simulate({"sites": "A,B,C", "homes": DIR, ...})`` starts the ServerApp and one virtual
SuperNode per site (Ray actors; node ``partition-id`` i is the i-th site, its home
``DIR/<code>``) and returns what the ServerApp wrote (model, lineage, metrics, registered model
id). It is the way to try federated training and to test it; the deployment runs the same apps
as separate SuperLink and SuperNode processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from bonebase.errors import BonebaseError, ConfigError
from bonebase.federated.config import NODE_DIR, merged, site_list
from bonebase.federated.strategy import FederationError


def check_homes(cfg: dict) -> list[str]:
    """The sites, each with a home folder under ``homes``; a missing one is named."""
    sites = site_list(cfg["sites"])
    if len(sites) < 2:
        raise ConfigError(f"--sites {cfg['sites']!r}: federated training needs at least two sites")
    homes = Path(str(cfg["homes"]))
    missing = [s for s in sites if not (homes / s).is_dir()]
    if missing:
        raise ConfigError(
            f"no home for site(s) {', '.join(missing)} in {homes}: each site's BONEBASE_HOME is "
            f"{homes}/<CODE>, holding its export in <CODE>/{NODE_DIR}/data"
        )
    return sites


def backend_config(n_sites: int, actors: int | None = None) -> dict:
    """Ray: one CPU per client, ``actors`` clients at a time (default: one per site, at most
    the machine's cores; each is a process that imports torch and MONAI once); quiet."""
    cpus = max(1, actors or min(n_sites, os.cpu_count() or 1))
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": cpus,
            "include_dashboard": False,
            "logging_level": "error",
            "log_to_driver": False,
            "object_store_memory": 256 * 1024 * 1024,
        },
    }


def simulate(
    overrides: dict,
    *,
    say: Callable[[str], None] = print,
    mods: list | None = None,
    verbose: bool = False,
    actors: int | None = None,
) -> dict:
    """Run the federation in Flower's simulation runtime (see the module doc). ``mods``:
    Flower client mods put in front of the ClientApp (tests use one to drop a site);
    ``actors``: simulated clients training at the same time (see :func:`backend_config`)."""
    from flwr.simulation import run_simulation

    from bonebase.federated.client import make_client_app
    from bonebase.federated.server import make_server_app

    cfg = merged(None, overrides)
    sites = check_homes(cfg)
    overrides = {**overrides, "homes": str(Path(str(cfg["homes"])).absolute())}
    # Ray's notice about GPU variables on a machine without GPUs, once per actor: off.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if not verbose:  # Flower's own log (and its notice that run_simulation is deprecated)
        logging.getLogger("flwr").setLevel(logging.ERROR)
    outcome: dict = {}
    run_simulation(
        server_app=make_server_app(overrides, say=say, outcome=outcome),
        client_app=make_client_app(overrides, mods=mods),
        num_supernodes=len(sites),
        backend_config=backend_config(len(sites), actors),
        verbose_logging=verbose,
    )
    error = outcome.get("error")
    if isinstance(error, BonebaseError):
        raise error
    if "model" not in outcome:
        raise FederationError(
            "the simulation ended without a model; run again with --verbose to see Flower's log"
        )
    return outcome


__all__ = ["backend_config", "check_homes", "simulate"]
