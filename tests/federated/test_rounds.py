"""What each round trains and which round's model is kept, against centralised training with the
same hyper-parameters (the comparison of benchmarks/federated.py): a round runs its share of one
cosine lr schedule over the whole run, and the server keeps the best-validated round's model as
train() keeps its best epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

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
    whole = {"rounds-per-epoch": 1}  # rounds of whole epochs
    _ask(consortium / "homes" / "HX", overrides={"rounds": 4, **whole},
         extra={"server-round": 3})  # fmt: skip
    assert asked["epochs"] == 1 and asked["lr_window"] == (2, 4)
    _ask(consortium / "homes" / "HX", overrides={"rounds": 3, "local-epochs": 2, **whole},
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


def _spy_train(monkeypatch) -> dict:
    import bonebase.model.train as training

    asked: dict = {}

    def spy(**kw):
        asked.clear()
        asked.update(kw)
        raise RuntimeError("stop after the call")  # the node replies FAILED; we read the call

    monkeypatch.setattr(training, "train", spy)
    return asked


def test_rounds_of_a_quarter_epoch_cut_one_epoch_at_its_lr(consortium, monkeypatch):
    """8 rounds of a quarter epoch (2 epochs): rounds 1-4 train parts 0-3 of epoch 1's batches
    (one seed: one order of them) at epoch 1's lr, rounds 5-8 epoch 2's; with rounds of whole
    epochs and a fresh optimizer a round trains a whole epoch with a seed of its own and no
    part, and nothing of an optimizer (as before the options)."""
    asked = _spy_train(monkeypatch)
    home = consortium / "homes" / "HX"
    seen = []
    for server_round in range(1, 9):
        _ask(home, overrides={"rounds": 8, "rounds-per-epoch": 4},
             extra={"server-round": server_round})  # fmt: skip
        seen.append((asked["epochs"], asked["seed"], asked["lr_window"], asked["epoch_part"]))
    seed = TINY["seed"]
    assert seen == [(1, seed + 1 + r // 4, (r // 4, 2), (r % 4, 4)) for r in range(8)]
    for server_round in (1, 3):
        _ask(home, overrides={"rounds": 3, "rounds-per-epoch": 1, "keep-optimizer": False},
             extra={"server-round": server_round})  # fmt: skip
        assert asked["seed"] == seed + server_round and asked["lr_window"] == (server_round - 1, 3)
        assert "epoch_part" not in asked and "optimizer_state" not in asked


def test_the_parts_of_an_epoch_train_each_of_its_batches_once():
    """Parts 0-3 of 50 rows in batches of 8 (6 batches, the last 2 rows dropped as the
    loader drops a partial batch): disjoint, whole batches, together the epoch's 48 rows; more
    parts than batches cut the images instead, and parts of one image are refused by name."""
    from bonebase.errors import InputError
    from bonebase.model.train import _part_of_epoch

    parts = [_part_of_epoch(50, 8, 5, part, 4) for part in range(4)]
    assert [len(p) for p in parts] == [8, 16, 8, 16]
    rows = [r for p in parts for r in p]
    assert len(set(rows)) == 48 and rows == torch.randperm(
        50, generator=torch.Generator().manual_seed(5)).tolist()[:48]
    assert _part_of_epoch(50, 8, 6, 0, 4) != parts[0]  # another epoch, another order
    # fewer batches than parts (a small hospital): parts of the images, each one smaller batch
    small = [_part_of_epoch(50, 8, 5, part, 7) for part in range(7)]
    assert [len(p) for p in small] == [7, 7, 7, 7, 7, 7, 8]
    assert [r for p in small for r in p] == torch.randperm(
        50, generator=torch.Generator().manual_seed(5)).tolist()  # fmt: skip
    with pytest.raises(InputError, match="50 training images cannot be cut into 26 parts"):
        _part_of_epoch(50, 8, 5, 0, 26)


def _hx(consortium):
    data = consortium / "homes" / "HX" / "federated" / "data"
    return data, load_frame(data, task=PARAMS["task"])


def test_train_keeps_the_optimizer_state_it_is_given(consortium):
    """Two calls sharing ``optimizer_state``: the second AdamW continues the first's (step count
    and moments carried, 2 x the steps of one call); without it each call starts afresh."""
    data, frame = _hx(consortium)
    hp = {**PARAMS["train"], "precise_bn": False, "batch_size": 4}
    kept: dict = {}
    first = train(frame=frame, data_dir=data, task=PARAMS["task"], epochs=1, patience=1,
                  optimizer_state=kept, **hp)  # fmt: skip
    steps = float(kept["state"][0]["step"])
    assert steps >= 2 and set(kept["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    moment = kept["state"][0]["exp_avg"].clone()
    train(frame=frame, data_dir=data, task=PARAMS["task"], epochs=1, patience=1,
          optimizer_state=kept, **hp)  # fmt: skip
    assert float(kept["state"][0]["step"]) == 2 * steps
    assert not torch.equal(kept["state"][0]["exp_avg"], moment)
    # without the option nothing changed: the same seed gives the same weights
    again = train(frame=frame, data_dir=data, task=PARAMS["task"], epochs=1, patience=1, **hp)
    assert all(torch.equal(first.state_dict[k], again.state_dict[k]) for k in first.state_dict)


def test_a_site_keeps_its_optimizer_at_home_across_rounds(consortium):
    """With keep-optimizer, a site's AdamW state lives in its own Flower state between rounds
    (round 2 starts from round 1's: its step count doubles) and the reply carries the weights
    and metrics only, as without it."""
    from bonebase.federated.client import OPTIMIZER_KEY, load_optimizer, make_client_app
    from bonebase.federated.config import ModelSpec

    home = consortium / "homes" / "HX"
    spec = ModelSpec.from_run_config(merged(None, {**TINY, "batch-size": 4, "rounds": 4,
                                                   "rounds-per-epoch": 2,
                                                   "keep-optimizer": True}))  # fmt: skip
    ctx = Context(run_id=1, node_id=1, node_config={"bonebase-home": str(home), "site": "HX"},
                  state=RecordDict(), run_config={})  # fmt: skip
    app = make_client_app()
    torch.manual_seed(0)
    arrays = ArrayRecord(build_network("resnet10-slim", num_classes=2).state_dict())
    steps, reported = [], []
    for server_round in (1, 2):
        msg = Message(content=RecordDict({"arrays": arrays, "config": ConfigRecord(
            {**spec.to_config(), "server-round": server_round})}), dst_node_id=1,
            message_type="train")  # fmt: skip
        reply = app(msg, ctx)
        assert not reply.has_error(), reply.error
        assert set(reply.content) == {"arrays", "metrics", "site"}
        arrays = reply.content["arrays"]
        steps.append(float(load_optimizer(ctx)["state"][0]["step"]))
        reported.append(reply.content["metrics"]["optimizer-steps"])
    assert OPTIMIZER_KEY in ctx.state
    # rounds 1 and 2 are the two halves of epoch 1's B batches: round 2's count is the epoch's
    # (a fresh optimizer would count B - B // 2)
    batches = int((_hx(consortium)[1]["split"] == "train").sum()) // 4
    assert batches >= 2 and steps == [batches // 2, batches]
    # what the server hears: the steps the kept optimizer had taken before each round
    assert reported == [0, batches // 2]


def test_the_server_says_when_a_site_comes_back_with_a_fresh_optimizer():
    """A site that trained before and reports a kept optimizer of no steps lost its node's
    state (a restart): said and recorded in the lineage; a site new to the run, one whose
    optimizer kept its steps, and a run without keep-optimizer (no such metric) are not."""
    from flwr.serverapp.strategy import FedAvg

    from bonebase.federated.strategy import SiteWatch

    said: list[str] = []
    watch = SiteWatch(FedAvg(), min_sites=1, reference={}, say=said.append)
    watch.rounds = [{"round": 1, "train": {"HX": {"optimizer-steps": 0}, "BJ1": {}}}]
    watch._check_optimizers(2, {"HX": {"optimizer-steps": 0}, "BJ1": {"optimizer-steps": 12},
                                "MUC": {"optimizer-steps": 0}})  # fmt: skip
    assert watch.optimizer_resets == [{"round": 2, "site": "HX"}]
    assert said == ["round 2: HX trained with a fresh optimizer (its node lost the optimizer "
                    "state it keeps between rounds: restarted?)"]
    watch._check_optimizers(3, {"BJ1": {}, "MUC": {"optimizer-steps": 8}})
    assert len(watch.optimizer_resets) == 1
