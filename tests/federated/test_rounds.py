"""What each round trains and which round's model is kept, against centralised training with the
same hyper-parameters (the comparison of benchmarks/federated.py): a round runs its share of one
cosine lr schedule over the whole run, and the server keeps the best-validated round's model as
train() keeps its best epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from bonebase.federated.config import merged
from bonebase.federated.strategy import SiteWatch, build_strategy
from bonebase.model.data import load_frame
from bonebase.model.networks import build_network
from bonebase.model.train import train
from tests.federated.conftest import PARAMS, TINY
from tests.federated.test_client import _ask


def test_a_round_trains_its_share_of_the_runs_cosine_schedule(consortium, monkeypatch):
    """Round 3 of 4 (one local epoch) runs the third epoch of a 4-epoch cosine: lr x 0.5, as
    centralised training's third epoch does; a fresh cosine per round ran it at the full lr."""
    import bonebase.model.train as training

    asked: dict = {}

    def spy(**kw):
        asked.update(kw)
        raise RuntimeError("stop after the call")  # the node replies FAILED; we read the call

    monkeypatch.setattr(training, "train", spy)
    _ask(consortium / "homes" / "HX", overrides={"rounds": 4}, extra={"server-round": 3})
    assert asked["epochs"] == 1 and asked["lr_window"] == (2, 4)
    _ask(consortium / "homes" / "HX", overrides={"rounds": 3, "local-epochs": 2},
         extra={"server-round": 2})  # fmt: skip
    assert asked["epochs"] == 2 and asked["lr_window"] == (2, 6)


def test_train_in_windows_follows_the_centralised_schedule(consortium):
    """train() over epochs 1-2 and 3-4 of a 4-epoch window sets the same learning rates as one
    4-epoch run (history's lr: the rate after each epoch's scheduler step)."""
    data = consortium / "homes" / "HX" / "federated" / "data"
    frame = load_frame(data, task=PARAMS["task"])
    hp = {**PARAMS["train"], "precise_bn": False}
    whole = train(frame=frame, data_dir=data, task=PARAMS["task"], epochs=4, patience=4, **hp)
    parts = [train(frame=frame, data_dir=data, task=PARAMS["task"], epochs=2, patience=2,
                   lr_window=(offset, 4), **hp) for offset in (0, 2)]  # fmt: skip
    lr = hp["lr"]
    expected = [lr * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in (1, 2, 3, 4)]
    assert [h["lr"] for h in whole.history] == pytest.approx(expected, abs=1e-12)
    assert [h["lr"] for p in parts for h in p.history] == pytest.approx(expected, abs=1e-12)


class _Grid:
    """The two connected nodes Flower's FedAvg samples from (the strategy asks nothing else)."""

    def get_node_ids(self):
        return [11, 12]


def _evaluation_replies(messages, auc: float, threshold: float = 0.4) -> list[Message]:
    return [
        Message(content=RecordDict({
            "metrics": MetricRecord({"num-examples": 5, "loss": 0.6, "auc": auc,
                                     "threshold": threshold}),
            "site": ConfigRecord({"site": f"S{m.metadata.dst_node_id}", "dataset-version": "v",
                                  "export-size": 32}),
        }), reply_to=m)
        for m in messages
    ]  # fmt: skip


def _scored_watch(cfg: dict, scores: list[tuple[int, float, float]]):
    """A SiteWatch that evaluated one global model per ``(round, auc, threshold)`` (every float
    weight of round r's model set to r), and those models by round."""
    net = build_network("resnet10-slim", num_classes=2)
    reference = {k: v.numpy() for k, v in net.state_dict().items()}
    watch = SiteWatch(build_strategy(cfg, 2), min_sites=2, reference=reference, say=lambda _: None)
    models = {}
    for server_round, auc, threshold in scores:
        state = {k: torch.full_like(v, server_round) if v.is_floating_point() else v
                 for k, v in net.state_dict().items()}  # fmt: skip
        models[server_round] = ArrayRecord(state)
        watch.rounds.append({"round": server_round})
        sent = list(watch.configure_evaluate(server_round, models[server_round],
                                             ConfigRecord({}), _Grid()))  # fmt: skip
        watch.aggregate_evaluate(server_round, _evaluation_replies(sent, auc, threshold))
    return watch, models


def test_the_server_keeps_the_best_validated_round():
    """Validation AUC 0.6, 0.8, 0.7 over three rounds: round 2's global model is kept (the last
    round's was kept before, whatever its validation said)."""
    watch, _ = _scored_watch(merged(None, {**TINY, "sites": "S11,S12"}),
                             [(1, 0.6, 0.4), (2, 0.8, 0.4), (3, 0.7, 0.4)])  # fmt: skip
    assert watch.best["round"] == 2 and watch.best["auc"] == pytest.approx(0.8)
    kept = watch.best["arrays"].to_torch_state_dict()
    assert float(kept["fc.weight"].flatten()[0]) == 2.0
    assert np.isclose(watch.best["evaluate_mean"]["threshold"], 0.4)


@pytest.mark.parametrize(("keep_round", "kept_round"), [("best", 1), ("last", 2)])
def test_keep_round_keeps_the_best_validated_or_the_last_round(keep_round, kept_round):
    """Round 1 validates at AUC 0.8, round 2 at 0.6: ``best`` keeps round 1's global model and
    its threshold, ``last`` the final global model (round 2's) and round 2's threshold."""
    cfg = merged(None, {**TINY, "sites": "S11,S12", "keep-round": keep_round})
    watch, models = _scored_watch(cfg, [(1, 0.8, 0.3), (2, 0.6, 0.7)])
    kept = watch.kept(cfg["keep-round"], models[2], int(cfg["rounds"]))  # models[2]: the final
    assert kept["round"] == kept_round
    assert float(kept["arrays"].to_torch_state_dict()["fc.weight"].flatten()[0]) == kept_round
    assert kept["evaluate_mean"]["threshold"] == pytest.approx({1: 0.3, 2: 0.7}[kept_round])


def test_keep_round_best_without_a_scored_round_keeps_the_final_model():
    """No round's validation AUC is finite (no site had validation cases of both classes): the
    final global model is kept, whatever keep-round says."""
    watch, models = _scored_watch(merged(None, {**TINY, "sites": "S11,S12"}),
                                  [(1, float("nan"), 0.4)])  # fmt: skip
    for keep_round in ("best", "last"):
        kept = watch.kept(keep_round, models[1], 1)
        assert kept["round"] == 1 and kept["arrays"] is models[1]
