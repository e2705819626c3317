"""Privacy accounting of DP runs: ε for δ from the noise multiplier, the sites' FedAvg weights
and the rounds, checked against the Gaussian mechanism's exact curve and the classic RDP bound
(computed here independently of opacus)."""

from __future__ import annotations

import math
import sys

import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from bonebase.federated.privacy import account, effective_noise, run_accounting


def exact_epsilon(z: float, rounds: int, delta: float) -> float:
    """The tightest ε of ``rounds`` Gaussian mechanisms at noise multiplier z (one Gaussian of
    mu = sqrt(rounds) / z; Balle & Wang 2018): a lower bound for any accountant."""
    mu = math.sqrt(rounds) / z

    def gap(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(gap, 0.0, 500.0)


def classic_rdp_epsilon(z: float, rounds: int, delta: float) -> float:
    """RDP of the Gaussian mechanism (alpha / 2z^2 per round) converted with Mironov's 2017
    bound: an upper bound the accountant must not exceed."""
    return min(rounds * a / (2 * z * z) + math.log(1 / delta) / (a - 1)
               for a in [1 + x / 10 for x in range(1, 1000)])  # fmt: skip


@pytest.mark.parametrize(("z", "rounds"), [(1.0, 4), (2.0, 10), (0.7, 3)])
def test_epsilon_lies_between_the_exact_curve_and_the_classic_bound(z, rounds):
    got = account(z, [[50, 50, 50]] * rounds, 1e-5)
    assert got["rounds_accounted"] == rounds and got["delta"] == 1e-5
    assert got["effective_noise_multipliers"] == [z] * rounds
    eps = got["epsilon"]
    assert exact_epsilon(z, rounds, 1e-5) < eps <= classic_rdp_epsilon(z, rounds, 1e-5) + 1e-3


def test_epsilon_grows_with_rounds_and_unequal_weights_and_shrinks_with_noise():
    base = account(1.0, [[50, 50, 50]] * 4, 1e-5)["epsilon"]
    assert account(1.0, [[50, 50, 50]] * 8, 1e-5)["epsilon"] > base
    assert account(2.0, [[50, 50, 50]] * 4, 1e-5)["epsilon"] < base
    assert account(1.0, [[50, 50, 50]] * 4, 1e-3)["epsilon"] < base
    # a site holding half the images moves the average by C/2, not C/3: less noise per reach
    assert effective_noise(1.0, [25, 25, 50]) == pytest.approx(1 / 1.5)
    uneven = account(1.0, [[25, 25, 50]] * 4, 1e-5)
    assert uneven["effective_noise_multipliers"] == [pytest.approx(0.6667, abs=1e-4)] * 4
    assert uneven["epsilon"] > base


def test_a_run_is_accounted_from_its_rounds_and_without_opacus_says_so(monkeypatch):
    rounds = [
        {"round": 1, "train": {"A": {"num-examples": 40}, "B": {"num-examples": 40}}},
        {"round": 2, "train": {"A": {"num-examples": 40}}},  # B dropped out: one site's average
        {"round": 3},  # a round that aggregated nothing spends nothing
    ]
    cfg = {"dp-noise": 1.5, "dp-delta": 1e-6}
    got = run_accounting(cfg, rounds)
    assert got["rounds_accounted"] == 2 and got["effective_noise_multipliers"] == [1.5, 1.5]
    assert got["epsilon"] == account(1.5, [[1], [1]], 1e-6)["epsilon"] > 0
    monkeypatch.setitem(sys.modules, "opacus.accountants", None)  # not installed
    missing = run_accounting(cfg, rounds)
    assert missing["epsilon"] is None and "opacus is not installed" in missing["accountant"]


def test_impossible_delta_or_noise_is_refused():
    with pytest.raises(ValueError, match="dp-delta"):
        account(1.0, [[1, 1]], 1.5)
    with pytest.raises(ValueError, match="noise multiplier"):
        account(0.0, [[1, 1]], 1e-5)
