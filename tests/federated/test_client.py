"""The ClientApp called as Flower calls it (a Message and a Context), on a hospital's real home:
what it refuses, what it leaves out, what it sends back; FedProx's term in the one training loop;
per-site homes hold their own cases only."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from bonebase.errors import ConfigError
from bonebase.federated.client import (
    EXCLUDED,
    FAILED,
    REFUSED,
    make_client_app,
    proximal_term,
)
from bonebase.federated.config import ModelSpec, merged
from bonebase.model.data import load_frame
from bonebase.model.networks import build_network
from tests.federated.conftest import EXTERNAL, TINY, TRAINING


def _ask(home, *, arch="resnet10-slim", kind="train", overrides=None, extra=None):
    """The reply of the site at ``home`` to a round asking for ``TINY`` with ``arch``'s weights
    (``extra``: more keys in the round's config)."""
    spec = ModelSpec.from_run_config(merged(None, {**TINY, **(overrides or {})}))
    torch.manual_seed(0)
    net = build_network(arch, num_classes=2)
    msg = Message(
        content=RecordDict({"arrays": ArrayRecord(net.state_dict()),
                            "config": ConfigRecord({**spec.to_config(), "server-round": 1,
                                                   **(extra or {})})}),
        dst_node_id=1, message_type=kind,
    )  # fmt: skip
    ctx = Context(run_id=1, node_id=1, node_config={"bonebase-home": str(home), "site": home.name},
                  state=RecordDict(), run_config={})  # fmt: skip
    return make_client_app()(msg, ctx), net


def test_site_without_data_for_the_task_is_excluded(consortium):
    reply, _ = _ask(consortium / "homes" / EXTERNAL)
    assert reply.has_error() and reply.error.code == EXCLUDED
    assert reply.error.reason.startswith(f"site {EXTERNAL}: no data for task benign_vs_malignant")
    assert "excluded from this run" in reply.error.reason
    reply, _ = _ask(consortium / "homes" / "nowhere")
    assert reply.error.code == EXCLUDED and "no local export" in reply.error.reason


@pytest.mark.parametrize("kind", ["train", "evaluate"])
def test_a_site_too_small_for_the_rounds_of_an_epoch_is_excluded_by_name(consortium, kind):
    """Rounds of 1/N of an epoch need 2 training images a round: a hospital with fewer sits
    the run out with a sentence saying what to change (not a drop-out whose reason stays in its
    log). One with fewer batches than N trains on 1/N of its images a round."""
    home = consortium / "homes" / TRAINING[0]
    frame = load_frame(home / "federated" / "data", task=TINY["task"])
    n = int((frame["split"] == "train").sum())  # images
    parts = n // 2 + 1
    reply, _ = _ask(home, kind=kind, overrides={"rounds": parts, "rounds-per-epoch": parts})
    assert reply.has_error() and reply.error.code == EXCLUDED, reply.error
    assert reply.error.reason == (
        f"site {home.name}: {n} training images cannot be cut into {parts} parts of at least 2, "
        "one for each round of an epoch; excluded from this run (ask for fewer rounds per "
        "epoch)")
    # one batch of the n images, cut into 4 rounds of an epoch
    reply, _ = _ask(home, kind=kind, overrides={"rounds": 4, "rounds-per-epoch": 4,
                                                "batch-size": n})  # fmt: skip
    assert not reply.has_error(), reply.error.reason


def test_a_failure_at_the_node_leaves_it_as_a_fixed_sentence(consortium, monkeypatch, caplog):
    """Only parameters and metrics leave a hospital: an error inside local training (which may
    name a patient's pseudonym, an image or a path) stays in the node's log; the server hears
    a drop-out with a fixed sentence."""
    import bonebase.model.train as training

    def broken(**kw):
        raise RuntimeError("image /srv/hx/images/PSEUDO-77.png of patient PSEUDO-77 is torn")

    monkeypatch.setattr(training, "train", broken)
    reply, _ = _ask(consortium / "homes" / "HX")
    assert reply.error.code == FAILED
    assert reply.error.reason == "site HX: local training failed (the reason is in the node's log)"
    assert "PSEUDO-77" in caplog.text  # kept at the node


def test_other_network_or_agreement_is_refused(consortium, tmp_path):
    reply, _ = _ask(consortium / "homes" / "HX", arch="resnet18")
    assert reply.error.code == REFUSED
    assert "do not fit network resnet10-slim" in reply.error.reason
    assert "layer conv1.weight: the server sends (64, 1, 7, 7)" in reply.error.reason
    home = tmp_path / "BJ1"
    (home / "federated").mkdir(parents=True)
    (home / "federated" / "data").symlink_to(consortium / "homes" / "BJ1" / "federated" / "data")
    (home / "federated" / "node.yaml").write_text("task: benign_vs_malignant\nimage_size: 64\n")
    reply, _ = _ask(home)
    assert reply.error.code == REFUSED
    assert "image_size: server 32, this node 64" in reply.error.reason


def test_training_reply_holds_weights_and_metrics_only(consortium):
    reply, sent = _ask(consortium / "homes" / "HX")
    assert not reply.has_error()
    assert set(reply.content.keys()) == {"arrays", "metrics", "site"}
    # (keep-optimizer, the default: the steps a node's kept optimizer had taken, none yet)
    assert set(reply.content["metrics"]) == {"num-examples", "train-loss", "val-auc",
                                             "optimizer-steps"}
    assert reply.content["metrics"]["optimizer-steps"] == 0
    labels = pd.read_csv(consortium / "homes" / "HX" / "federated" / "data" / "labels.csv")
    split = pd.read_csv(consortium / "homes" / "HX" / "federated" / "data" / "split.csv")
    n_train = int(labels.merge(split, on=["patient_id", "site"]).eval("split == 'train'").sum())
    assert reply.content["metrics"]["num-examples"] == n_train
    site = dict(reply.content["site"])
    assert site["site"] == "HX" and site["export-size"] == 32
    assert len(site["dataset-version"]) == 16  # the content hash of labels.csv + split.csv
    new = reply.content["arrays"].to_torch_state_dict()
    assert set(new) == set(sent.state_dict())
    assert not torch.equal(new["fc.weight"], sent.state_dict()["fc.weight"])

    # The server's reading of the round when a second site never answered.
    from bonebase.federated.strategy import SiteWatch, build_strategy

    said: list[str] = []
    reference = {k: v.numpy() for k, v in sent.state_dict().items()}
    watch = SiteWatch(build_strategy(merged(None, {**TINY, "sites": "HX,BJ1"}), 2), min_sites=1,
                      reference=reference, say=said.append)  # fmt: skip
    watch.asked = [reply.metadata.src_node_id, 99]
    arrays, _ = watch.aggregate_train(1, [reply])
    assert said == ["round 1: node 99 dropped out of training (no reply within round-timeout)",
                    "round 1: completes with 1 of 2 sites (minimum 1)"]  # fmt: skip
    assert watch.datasets == {"HX": site["dataset-version"]}
    averaged = arrays.to_torch_state_dict()
    assert averaged["bn1.num_batches_tracked"].dtype == torch.int64
    assert torch.allclose(averaged["fc.weight"], new["fc.weight"])


def test_client_side_dp_clips_the_update_when_the_round_asks(consortium):
    """DP with client-side clipping: Flower's fixedclipping_mod bounds the L2 norm of the whole
    update, every array counted: BatchNorm's batch counters come back as they were sent, so
    they neither inflate the norm nor shrink the weights' share of C."""
    reply, sent = _ask(consortium / "homes" / "BOS", extra={"clipping_norm": 0.5})
    new, old = reply.content["arrays"].to_torch_state_dict(), sent.state_dict()
    counters = [k for k in old if k.endswith("num_batches_tracked")]
    assert counters and all(int(new[k]) == int(old[k]) for k in counters)
    norm = sum(float((new[k].double() - old[k].double()).pow(2).sum()) for k in old) ** 0.5
    assert 0.45 < norm <= 0.5 + 1e-5, norm  # the update was larger than C: clipped to C


def test_evaluation_reply(consortium):
    reply, _ = _ask(consortium / "homes" / "BJ1", kind="evaluate")
    metrics = dict(reply.content["metrics"])
    assert set(metrics) == {"num-examples", "loss", "auc", "threshold"}
    assert metrics["num-examples"] > 0 and 0.0 <= metrics["auc"] <= 1.0 and metrics["loss"] > 0
    assert "arrays" not in reply.content


def test_fedprox_term_holds_local_training_near_the_global_model(consortium):
    """The proximal term goes into train()'s loss: with a large mu the weights move less (one
    epoch of small batches: the term is zero on the first step, when the weights are the global
    ones, and train() returns its best epoch)."""
    from bonebase.model.data import load_frame
    from bonebase.model.train import train

    data = consortium / "homes" / "HX" / "federated" / "data"
    frame = load_frame(data, task="benign_vs_malignant")
    torch.manual_seed(0)
    start = build_network("resnet10-slim").state_dict()
    path = data.parent / "start.pt"
    torch.save(start, path)

    def moved(extra):
        ckpt = train(frame=frame, data_dir=data, task="benign_vs_malignant", arch="resnet10-slim",
                     image_size=32, epochs=1, batch_size=4, lr=0.01, weight_decay=0.0, seed=1,
                     num_workers=0, amp=False, pretrained=path, precise_bn=False,
                     extra_loss=extra)  # fmt: skip
        return sum(float((ckpt.state_dict[k] - start[k]).pow(2).sum())
                   for k in start if k.endswith("weight")) ** 0.5  # fmt: skip

    free, held = moved(None), moved(proximal_term(start, 100.0))
    assert held < 0.5 * free, (held, free)


def test_server_stops_at_the_first_round_on_a_refusal(consortium, tmp_path):
    """The refusal as the strategy receives it: the run stops, naming the site and the fix."""
    from bonebase.federated.strategy import FederationError, SiteWatch, build_strategy

    home = tmp_path / "BJ1"
    (home / "federated").mkdir(parents=True)
    (home / "federated" / "data").symlink_to(consortium / "homes" / "BJ1" / "federated" / "data")
    (home / "federated" / "node.yaml").write_text("arch: resnet18\n")
    reply, net = _ask(home)
    cfg = merged(None, {**TINY, "sites": "HX,BJ1"})
    watch = SiteWatch(build_strategy(cfg, 2), min_sites=2, reference={}, say=lambda _: None)
    with pytest.raises(FederationError) as caught:
        watch.aggregate_train(1, [reply])
    message = str(caught.value)
    assert message.startswith("round 1: site BJ1: the server asks for another model")
    assert "arch: server 'resnet10-slim', this node 'resnet18'" in message


def test_a_node_refuses_settings_its_release_does_not_know(consortium):
    """A server of a newer release asks for a setting this node would silently leave out (as a
    node before rounds-per-epoch would have trained whole epochs): refused, naming it."""
    reply, _ = _ask(consortium / "homes" / "HX", extra={"spec-warmup_rounds": 3})
    assert reply.error.code == REFUSED
    assert reply.error.reason == ("the server asks for settings this node's bonebase does not "
                                  "know (warmup_rounds): the server runs a newer release; update "
                                  "bonebase at the hospital")


def test_a_node_refuses_work_no_sane_run_asks_for(consortium):
    """A misconfigured or hostile server cannot make a hospital's node train for ever or at any
    image size: refused before training, and the run stops with the reason."""
    reply, _ = _ask(consortium / "homes" / "HX", overrides={"local-epochs": 1000,
                                                           "rounds-per-epoch": 1})
    assert reply.error.code == REFUSED
    assert reply.error.reason == ("the server asks for local_epochs=1000; this node trains with "
                                  "1 to 100")


def test_run_config_refuses_unknown_or_impossible_values():
    with pytest.raises(ConfigError, match="unknown keys \\['epochs'\\]"):
        merged({"epochs": 3})
    with pytest.raises(ConfigError, match="fedprox needs proximal-mu > 0"):
        merged(None, {"strategy": "fedprox"})
    with pytest.raises(ConfigError, match="dp-noise"):
        merged(None, {"dp-clip": 1.0})
    with pytest.raises(ConfigError, match="dp-delta=0; it must be in \\(0, 1\\)"):
        merged(None, {"dp-clip": 1.0, "dp-noise": 1.0, "dp-delta": 0})


def test_each_home_holds_its_own_cases_only(consortium):
    for site in TRAINING:
        data = consortium / "homes" / site / "federated" / "data"
        labels = pd.read_csv(data / "labels.csv", dtype=str)
        assert set(labels["site"]) == {site}
        images = {p.relative_to(data).as_posix() for p in (data / "images").rglob("*.png")}
        assert images == set(labels["image"])
    ext = pd.read_csv(consortium / "homes" / EXTERNAL / "federated" / "data" / "labels.csv")
    assert ext.empty  # the external site's cases stay at the consortium
