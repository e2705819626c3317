"""Privacy accounting of a federated run under differential privacy with fixed clipping: the ε
spent, for a given δ, recorded with the model.

Flower's DP wrappers (server- or client-side fixed clipping) clip each site's update to L2 norm
C and add Gaussian noise of standard deviation z·C/n to the aggregate of the n updates that
arrived, every round. That is the Gaussian mechanism at the level of a whole hospital
(client-level DP, DP-FedAvg of McMahan et al., ICLR 2018): two federations are neighbours when
one site's data differ, whatever they hold. One site moves the aggregate by at most C times its
weight in it; FedAvg weights a site by its training images (w_i = n_i / Σn, not 1/n), so the
noise measured against the heaviest site's reach is z_eff = (z·C/n) / (C·max w_i) =
z / (n · max w_i): z when the sites weigh the same, less when one weighs more. Every site is
asked every round (sampling rate 1: no amplification by subsampling), so the run is ``rounds``
Gaussian mechanisms composed, each at its round's z_eff; opacus's RDP accountant (a maintained
one) composes them and converts to (ε, δ).

What the figure covers, recorded beside it: the global model's weights. It assumes the sites'
numbers of training images are public (FedAvg's weights are computed from them), and it does not
cover the metrics the sites send in the clear (training loss, validation AUC and loss, counts),
nor the choice of the best-validated round made from them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable

_log = logging.getLogger("bonebase.federated")

ACCOUNTANT = "opacus RDP accountant (Renyi DP of the Gaussian mechanism, composed over rounds)"
ASSUMES = (
    "client-level DP (one hospital's data differ); every site asked every round (sampling rate "
    "1); the sites' training image counts are public (FedAvg's weights); covers the model "
    "weights, not the metrics sites send in the clear nor the best-round choice made from them"
)


def effective_noise(noise_multiplier: float, weights: Iterable[float]) -> float:
    """z_eff of one round: ``noise_multiplier`` / (n · the largest share of the aggregate),
    the sites' ``weights`` being their FedAvg weights (training images) that round."""
    w = [float(x) for x in weights]
    if not w or min(w) < 0 or sum(w) <= 0:
        raise ValueError(f"a round's FedAvg weights must be >= 0 with a positive sum, got {w}")
    return float(noise_multiplier) / (len(w) * max(w) / sum(w))


def account(noise_multiplier: float, round_weights: list[list[float]], delta: float) -> dict:
    """ε for ``delta`` after the rounds whose sites' FedAvg weights are ``round_weights``
    (one list per aggregated round), with the per-round effective noise multipliers."""
    from opacus.accountants import RDPAccountant

    if not 0 < delta < 1:
        raise ValueError(f"dp-delta={delta}: it must be in (0, 1), e.g. 1e-5")
    if noise_multiplier <= 0:
        raise ValueError("differential privacy needs a noise multiplier > 0")
    accountant = RDPAccountant()
    per_round = [effective_noise(noise_multiplier, w) for w in round_weights]
    for z in per_round:
        accountant.step(noise_multiplier=z, sample_rate=1.0)
    with warnings.catch_warnings():
        # at tiny noise the best order is opacus's smallest: still a valid (loose) upper bound
        warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")
        epsilon = accountant.get_epsilon(delta) if per_round else 0.0
    return {
        "epsilon": round(float(epsilon), 4),
        "delta": float(delta),
        "rounds_accounted": len(per_round),
        "effective_noise_multipliers": [round(z, 4) for z in per_round],
        "accountant": ACCOUNTANT,
        "assumes": ASSUMES,
    }


def run_accounting(cfg: dict, rounds: list[dict]) -> dict:
    """The accounting of a finished run from its run config (``dp-noise``, ``dp-delta``) and
    :class:`~bonebase.federated.strategy.SiteWatch`'s rounds (each site's ``num-examples``);
    ε is None with the reason when the accountant is not installed."""
    weights = [
        [float(m["num-examples"]) for m in entry["train"].values()]
        for entry in rounds
        if entry.get("train")
    ]
    try:
        return account(float(cfg["dp-noise"]), weights, float(cfg["dp-delta"]))
    except ImportError:
        _log.warning("opacus is not installed: no privacy accounting for this run")
        return {"epsilon": None, "delta": float(cfg["dp-delta"]),
                "accountant": "none: opacus is not installed (make install brings it)"}  # fmt: skip


__all__ = ["account", "effective_noise", "run_accounting"]
