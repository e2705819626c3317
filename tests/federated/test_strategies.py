"""Server-side optimizers (Flower's FedAvgM, FedAdam, FedYogi) and the global model's BatchNorm
statistics: what `--strategy` and `bn-stats` build, and one aggregation step by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedYogi,
)

from bonebase.errors import ConfigError
from bonebase.federated.config import merged
from bonebase.federated.strategy import SiteWatch, bn_statistics, build_strategy
from bonebase.model.networks import build_network
from tests.federated.conftest import TINY
from tests.federated.test_rounds import _Grid


def _cfg(**extra) -> dict:
    return merged(None, {**TINY, "sites": "S11,S12", **extra})


def test_strategy_names_build_flowers_strategies_with_the_server_lr():
    assert type(build_strategy(_cfg(), 2)) is FedAvg
    avgm = build_strategy(_cfg(strategy="fedavgm", **{"server-momentum": 0.5}), 2)
    assert isinstance(avgm, FedAvgM)
    assert (avgm.server_learning_rate, avgm.server_momentum) == (1.0, 0.5)
    adam = build_strategy(_cfg(strategy="fedadam"), 2)
    assert isinstance(adam, FedAdam) and adam.eta == pytest.approx(0.01)
    yogi = build_strategy(_cfg(strategy="fedyogi", **{"server-lr": 0.003}), 2)
    assert isinstance(yogi, FedYogi) and yogi.eta == pytest.approx(0.003)
    dp = build_strategy(_cfg(**{"dp-clip": 1.0, "dp-noise": 0.1}), 2)
    assert isinstance(dp, DifferentialPrivacyServerSideFixedClipping)


@pytest.mark.parametrize("bad", [
    {"strategy": "fedsgd"}, {"server-lr": -0.1}, {"server-momentum": 1.0},
    {"bn-stats": "median"}, {"keep-round": "first"},
    {"strategy": "fedadam", "dp-clip": 1.0, "dp-noise": 0.1},
    {"bn-stats": "pooled", "dp-clip": 1.0, "dp-noise": 0.1},
])  # fmt: skip
def test_impossible_server_options_are_refused(bad):
    with pytest.raises(ConfigError):
        _cfg(**bad)


def test_pooled_bn_statistics_are_those_of_the_sites_data_together():
    """Two sites of 30 and 10 samples whose channel means differ: the pooled variance is the
    variance of all 40 samples; the plain average misses the spread of the means."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, (30, 3)), rng.normal(2.0, 0.5, (10, 3))
    states = [{"bn.running_mean": x.mean(0), "bn.running_var": x.var(0)} for x in (a, b)]
    pooled = bn_statistics(states, [30, 10], pooled=True)
    both = np.concatenate([a, b])
    assert pooled["bn.running_mean"] == pytest.approx(both.mean(0))
    assert pooled["bn.running_var"] == pytest.approx(both.var(0))
    plain = bn_statistics(states, [30, 10], pooled=False)
    assert plain["bn.running_var"] == pytest.approx(0.75 * a.var(0) + 0.25 * b.var(0))
    assert np.all(plain["bn.running_var"] < pooled["bn.running_var"])


def _train_replies(messages, states, examples) -> list[Message]:
    return [
        Message(content=RecordDict({
            "arrays": ArrayRecord(state),
            "metrics": MetricRecord({"num-examples": n, "train-loss": 0.5, "val-auc": 0.6}),
            "site": ConfigRecord({"site": f"S{m.metadata.dst_node_id}", "dataset-version": "v",
                                  "export-size": 32}),
        }), reply_to=m)
        for m, state, n in zip(messages, states, examples, strict=True)
    ]  # fmt: skip


@pytest.mark.parametrize("strategy", ["fedadam", "fedavgm"])
@pytest.mark.parametrize("bn", ["average", "pooled"])
def test_a_server_optimizer_steps_the_weights_and_leaves_bn_statistics_to_the_sites(strategy, bn):
    """One round: every site moved each weight by +1 (site 12 by +3); the server optimizer
    steps the weights its own way (FedAdam: about server-lr; FedAvgM: the weighted average
    update on the first round), while BatchNorm's running statistics are the sites' average
    or their pooled statistics, never an optimizer's step."""
    torch.manual_seed(0)
    net = build_network("resnet10-slim", num_classes=2)
    start = net.state_dict()
    reference = {k: v.numpy() for k, v in start.items()}
    cfg = _cfg(strategy=strategy, **{"bn-stats": bn})
    watch = SiteWatch(build_strategy(cfg, 2), min_sites=2, reference=reference,
                      say=lambda _: None, bn_stats=bn)  # fmt: skip
    sent = list(watch.configure_train(1, ArrayRecord(start), ConfigRecord({}), _Grid()))
    states = []
    for shift in (1.0, 3.0):
        state = {}
        for k, v in start.items():
            if k.endswith("running_mean"):
                state[k] = torch.full_like(v, shift)
            elif k.endswith("running_var"):
                state[k] = torch.full_like(v, 1.0)
            elif v.is_floating_point():
                state[k] = v + shift
            else:
                state[k] = v.clone()
        states.append(state)
    arrays, _ = watch.aggregate_train(1, _train_replies(sent, states, [30, 10]))
    out = arrays.to_torch_state_dict()
    mean_key = next(k for k in out if k.endswith("running_mean"))
    var_key = mean_key.replace("running_mean", "running_var")
    assert torch.allclose(out[mean_key], torch.full_like(out[mean_key], 1.5))  # 0.75·1 + 0.25·3
    expected_var = 1.0 + (0.75 * 0.25 * 4.0 if bn == "pooled" else 0.0)  # + spread of means
    assert torch.allclose(out[var_key], torch.full_like(out[var_key], expected_var))
    step = (out["fc.weight"] - start["fc.weight"]).flatten()
    if strategy == "fedadam":  # Adam's bias-corrected step of about eta along the update
        assert 0.005 < float(step.min()) and float(step.max()) < 0.02
    else:  # FedAvgM's first step: server lr 1 × the weighted average update
        assert torch.allclose(step, torch.full_like(step, 1.5))
        assert watch.inner.current_arrays is arrays  # its next step starts from what was sent


def test_a_run_with_fedadam_and_pooled_bn_trains_and_records_them(consortium, tmp_path):
    """Two rounds of Flower's FedAdam in the simulation runtime, keeping the last round: a model
    whose BatchNorm statistics are valid, and the lineage naming the server optimizer, the
    statistics and the round kept."""
    from bonebase.federated.simulation import simulate
    from bonebase.model.checkpoint import load_checkpoint
    from tests.federated.conftest import TRAINING

    said: list[str] = []
    done = simulate({**TINY, "sites": ",".join(TRAINING), "homes": str(consortium / "homes"),
                     "rounds": 2, "rounds-per-epoch": 2, "strategy": "fedadam",
                     "bn-stats": "pooled",
                     "keep-round": "last",
                     "out-dir": str(tmp_path / "out")}, say=said.append, actors=1)  # fmt: skip
    assert sum(line.startswith("round ") for line in said) == 2
    fed = load_checkpoint(done["model"]).train_params["federated"]
    assert fed["strategy"] == "fedadam" and fed["bn_stats"] == "pooled"
    assert fed["server_optimizer"] == {"server_lr": 0.01}
    assert fed["keep_round"] == "last" and fed["selected_round"] == 2
    state = load_checkpoint(done["model"]).state_dict
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    assert variances and all(bool(torch.isfinite(v).all() and (v > 0).all()) for v in variances)
