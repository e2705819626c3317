"""The ClientApp: one hospital trains the consortium's network on its own export.

Each round the server sends the global weights (ArrayRecord ``arrays``) and the model it wants
(ConfigRecord ``config``: :class:`~bonebase.federated.config.ModelSpec`). The node checks that
spec against its own agreement and the weights against the network, trains ``local_epochs``
epochs with bonebase's one training loop (:func:`bonebase.model.train.train`, started from the
global weights, at the round's share of one cosine lr schedule over the whole run) on its train
split, and replies with the new weights and metrics only: the
number of training images, the training loss and the local validation AUC (with
``keep-optimizer``, also how many steps the node's kept optimizer had taken before the round). With
``rounds-per-epoch`` K > 1 a round trains 1/K of an epoch's batches (K rounds share one order
of them), and with ``keep-optimizer`` the node keeps its AdamW moments in its own Flower state
(``Context.state``) from one round to the next instead of starting a fresh optimizer: they
never leave the node. Evaluation replies
the validation cases' count, loss, AUC and Youden threshold. Nothing else leaves the node: no
image, no row, no identifier (the site code and the dataset version's content hash name the
reply).

A node that cannot take part answers with an error the server understands:
:data:`EXCLUDED` (no data for the task: it sits the run out) or :data:`REFUSED` (the server asks
for another model than this node agreed to, or sends weights of another network: the run stops
at the first round).
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from bonebase.dataset.marker import dataset_identity
from bonebase.errors import BonebaseError, ConfigError, InputError, NotFoundError
from bonebase.federated.config import ModelSpec, Node, locate_node, merged
from bonebase.model.checkpoint import task_classes
from bonebase.model.networks import build_network

EXCLUDED = 4601  # the node has no data for the task: left out of this run
REFUSED = 4602  # the server's model is not the one this node agreed to train
FAILED = 4603  # training or evaluation failed at the node: a drop-out for this round
_SEE_LOG = "the reason is in the node's log"
_log = logging.getLogger("bonebase.federated")


class Excluded(BonebaseError):
    """This node has no usable data for the task."""


class Refused(BonebaseError):
    """This node will not train the model the server asks for."""


def site_frame(node: Node, spec: ModelSpec) -> pd.DataFrame:
    """The node's export for ``spec.task`` with train and val cases of every class."""
    from bonebase.model.data import load_frame
    from bonebase.model.train import MIN_PART_IMAGES, _check_split

    agreed = node.agreement()
    asked = {"task": spec.task, "arch": spec.arch, "image_size": spec.image_size}
    differ = {k: (asked[k], v) for k, v in agreed.items() if asked[k] != v}
    if differ:
        what = "; ".join(f"{k}: server {a!r}, this node {b!r}" for k, (a, b) in differ.items())
        raise Refused(
            f"site {node.site}: the server asks for another model than this hospital agreed to "
            f"train ({what}; federated/node.yaml in its home); align the server's run config or "
            "the node's agreement"
        )
    if not (node.data / "labels.csv").is_file():
        _log.warning("site %s: no local export in %s", node.site, node.data)
        raise Excluded(
            f"site {node.site}: no local export (labels.csv, split.csv, images/); excluded from "
            "this run: run `bonebase federated prepare` at the hospital"
        )
    # What leaves the node is a fixed sentence: the reader's own error (which may name a
    # patient's pseudonym, an image or a path of the hospital) stays in the node's log.
    try:
        frame = load_frame(node.data, task=spec.task)
    except NotFoundError as exc:
        _log.warning("site %s: %s", node.site, exc)
        raise Excluded(f"site {node.site}: its local export has nothing usable for task "
                       f"{spec.task}; excluded from this run ({_SEE_LOG})") from None
    except InputError as exc:
        _log.warning("site %s: %s", node.site, exc)
        if "missing columns" in str(exc):
            raise Excluded(
                f"site {node.site}: its export has no {spec.task} labels; excluded from this run"
            ) from None
        raise Refused(f"site {node.site}: its local export cannot be read for task {spec.task} "
                      f"({_SEE_LOG})") from None
    classes = task_classes(spec.task)
    for split in ("train", "val"):
        try:
            _check_split(frame, split, classes)
        except InputError as exc:
            _log.warning("site %s: %s", node.site, exc)
            n = int((frame["split"] == split).sum())
            why = f"no {split} image" if n == 0 else f"{n} {split} images, not every class"
            raise Excluded(
                f"site {node.site}: no data for task {spec.task} to train on ({why}); excluded "
                "from this run"
            ) from None
    # rounds of 1/N of an epoch: the parts train() refuses, told as an exclusion here
    n_train, parts = int((frame["split"] == "train").sum()), spec.rounds_per_epoch
    if parts > 1 and n_train < MIN_PART_IMAGES * parts:
        raise Excluded(
            f"site {node.site}: {n_train} training images cannot be cut into {parts} parts of at "
            f"least {MIN_PART_IMAGES}, one for each round of an epoch; excluded from this run "
            "(ask for fewer rounds per epoch)"
        )
    return frame


def check_arrays(arrays: ArrayRecord, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """The server's weights as a state dict of ``spec``'s network, or Refused naming the layer."""
    own = build_network(spec.arch, num_classes=len(task_classes(spec.task))).state_dict()
    state = arrays.to_torch_state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        first = (
            f"layer {wrong[0]}: the server sends {tuple(state[wrong[0]].shape)}, this node's "
            f"network has {tuple(own[wrong[0]].shape)}" if wrong
            else f"layers missing {missing[:3]}, unexpected {extra[:3]}"
        )  # fmt: skip
        raise Refused(
            f"the server's weights do not fit network {spec.arch} with "
            f"{len(task_classes(spec.task))} classes ({first}); server and nodes must train the "
            "same network, image size and classes"
        )
    return state


def proximal_term(global_state: dict[str, torch.Tensor], mu: float):
    """FedProx's mu/2 * ||w - w_global||^2 over the network's parameters."""
    anchors: dict[str, torch.Tensor] = {}

    def term(net: torch.nn.Module) -> torch.Tensor:
        total = None
        for name, p in net.named_parameters():
            ref = anchors.get(name)
            if ref is None or ref.device != p.device:
                ref = anchors[name] = global_state[name].to(p.device, p.dtype)
            part = (p - ref).pow(2).sum()
            total = part if total is None else total + part
        return 0.5 * mu * total

    return term


def lr_window(spec: ModelSpec, server_round: int) -> tuple[int, int]:
    """Round ``server_round``'s epochs within one cosine schedule over the run's epochs
    (rounds x local epochs, or rounds / rounds-per-epoch), the schedule centralised training
    runs over the same total epochs (a fresh cosine per round would run every round at the full
    lr). The rounds that share an epoch train at that epoch's lr, as centralised training does."""
    return epoch_of(spec, server_round) * spec.local_epochs, spec.epochs


def epoch_of(spec: ModelSpec, server_round: int) -> int:
    """The run's epoch (0-based) that round ``server_round`` trains (a share of, with
    rounds-per-epoch > 1)."""
    return (min(server_round, spec.rounds) - 1) // spec.rounds_per_epoch


def round_plan(spec: ModelSpec, server_round: int) -> dict:
    """train()'s per-round arguments: the seed (one per epoch, so the rounds sharing an epoch
    cut one order of its batches), the lr window and, with rounds-per-epoch > 1, the round's
    part of the epoch."""
    parts = spec.rounds_per_epoch
    plan = {"seed": spec.seed + (server_round - 1) // parts + 1,
            "lr_window": lr_window(spec, server_round)}
    if parts > 1:
        plan["epoch_part"] = ((server_round - 1) % parts, parts)
    return plan


#: the node's own state (Flower Context.state) key holding its AdamW state across rounds
OPTIMIZER_KEY = "bonebase-optimizer"


def load_optimizer(context: Context) -> dict:
    """The AdamW state this node kept from its last round ({} before its first): per weight
    index, its tensors (``exp_avg``, ``exp_avg_sq``, ``step``)."""
    if OPTIMIZER_KEY not in context.state:
        return {}
    state: dict = {}
    for key, value in context.state[OPTIMIZER_KEY].to_torch_state_dict().items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state}


def kept_steps(kept: dict) -> int:
    """How many optimizer steps ``kept`` (:func:`load_optimizer`'s) has taken: 0 for a fresh
    optimizer. Sent as the ``optimizer-steps`` metric, so the server sees a node that lost its
    state (a restart) between rounds."""
    first = next(iter(kept.get("state", {}).values()), {})
    return int(first["step"]) if "step" in first else 0


def save_optimizer(context: Context, kept: dict) -> None:
    """Keep ``kept`` (train()'s ``optimizer_state``) in the node's own state: never sent."""
    flat = {f"{i}/{name}": t for i, st in kept["state"].items()
            for name, t in st.items()}  # fmt: skip
    context.state[OPTIMIZER_KEY] = ArrayRecord(flat)


def _reply(msg: Message, node: Node, frame: pd.DataFrame, arrays, metrics: dict) -> Message:
    from bonebase.model.data import png_side

    content = RecordDict({"metrics": MetricRecord(metrics)})
    if arrays is not None:
        content["arrays"] = arrays
    content["site"] = ConfigRecord({
        "site": node.site,
        "dataset-version": dataset_identity(node.data),
        "export-size": png_side(node.data / frame["image"].iloc[0]),
    })  # fmt: skip
    return Message(content=content, reply_to=msg)


def _failed(msg: Message, node: Node, what: str) -> Message:
    _log.exception("site %s: %s failed", node.site, what)
    return Message(Error(code=FAILED, reason=f"site {node.site}: {what} failed ({_SEE_LOG})"),
                   reply_to=msg)


def _refusal(msg: Message, exc: BonebaseError) -> Message:
    code = EXCLUDED if isinstance(exc, Excluded) else REFUSED
    return Message(Error(code=code, reason=str(exc)), reply_to=msg)


def _prepare(msg: Message, context: Context, overrides: dict | None):
    cfg = merged(context.run_config, overrides)
    spec = ModelSpec.from_config(msg.content["config"])
    node = locate_node(dict(context.node_config), cfg)
    frame = site_frame(node, spec)
    state = check_arrays(msg.content["arrays"], spec)
    return spec, node, frame, state


def local_train(msg: Message, context: Context, overrides: dict | None = None) -> Message:
    """One round of local training (see the module doc)."""
    from bonebase.model.train import train

    try:
        spec, node, frame, state = _prepare(msg, context, overrides)
        extra = {}
        if spec.proximal_mu > 0:
            if "extra_loss" not in inspect.signature(train).parameters:
                raise Refused(
                    f"site {node.site}: FedProx needs a proximal term in bonebase's training "
                    "loop, which this node's bonebase lacks; use --strategy fedavg"
                )
            extra["extra_loss"] = proximal_term(state, spec.proximal_mu)
    except (Excluded, Refused, ConfigError) as exc:
        return _refusal(msg, exc)
    server_round = int(msg.content["config"].get("server-round", 1))
    plan = round_plan(spec, server_round)
    if spec.keep_optimizer:
        extra["optimizer_state"] = load_optimizer(context)
        steps_before = kept_steps(extra["optimizer_state"])
    try:
        with tempfile.TemporaryDirectory(prefix="bonebase-fl-") as tmp:
            start = Path(tmp) / "global.pt"
            torch.save(state, start)
            ckpt = train(
                frame=frame, data_dir=node.data, task=spec.task, arch=spec.arch,
                image_size=spec.image_size, epochs=spec.local_epochs, batch_size=spec.batch_size,
                lr=spec.lr, weight_decay=spec.weight_decay, patience=spec.local_epochs,
                num_workers=spec.num_workers, amp=spec.amp, pretrained=start,
                precise_bn=spec.precise_bn, **plan, **extra,
            )  # fmt: skip
    except Exception:  # noqa: BLE001 - the node keeps the traceback; the server hears a drop-out
        return _failed(msg, node, "local training")
    if spec.keep_optimizer:
        save_optimizer(context, extra["optimizer_state"])
    # BatchNorm's step counters are not weights: sent back as received, they add nothing to the
    # update's norm, so DP clipping (client or server side) bounds the weights' update by C.
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            ckpt.state_dict[name] = value.clone()
    # the epoch whose weights travel (train() returns its best epoch, not always its last)
    sent = next((e for e in ckpt.history if e["epoch"] == ckpt.train_params.get("best_epoch")),
                ckpt.history[-1])
    metrics = {
        "num-examples": int((frame["split"] == "train").sum()),
        "train-loss": float(sent["train_loss"]),
        "val-auc": float(sent["val_auc"]),
    }
    if spec.keep_optimizer:  # the steps this node's kept optimizer had taken before the round
        metrics["optimizer-steps"] = steps_before
    return _reply(msg, node, frame, ArrayRecord(ckpt.state_dict), metrics)


def local_evaluate(msg: Message, context: Context, overrides: dict | None = None) -> Message:
    """The global model on this node's validation cases: count, loss, AUC, Youden threshold."""
    try:
        spec, node, frame, state = _prepare(msg, context, overrides)
    except (Excluded, Refused, ConfigError) as exc:
        return _refusal(msg, exc)
    try:
        metrics = _validation_metrics(spec, node, frame, state)
    except Exception:  # noqa: BLE001 - the node keeps the traceback; the server hears a drop-out
        return _failed(msg, node, "local evaluation")
    return _reply(msg, node, frame, None, metrics)


def _validation_metrics(spec: ModelSpec, node: Node, frame: pd.DataFrame, state) -> dict:
    from bonebase.model.data import make_dataset, make_loader
    from bonebase.model.infer import case_logits, run_logits
    from bonebase.model.train import val_score
    from bonebase.stats import youden_threshold

    net = build_network(spec.arch, num_classes=len(task_classes(spec.task)))
    net.load_state_dict(state)
    val = frame[frame["split"] == "val"].reset_index(drop=True)
    ds = make_dataset(val, node.data, image_size=spec.image_size, cache_workers=1)
    loader = make_loader(ds, batch_size=spec.batch_size * 2, shuffle=False, num_workers=0,
                         cuda=False)  # fmt: skip
    logits, _ = run_logits(net.eval(), loader)
    loss = torch.nn.functional.cross_entropy(
        torch.tensor(logits, dtype=torch.float32), torch.tensor(val["y"].to_numpy())
    )
    cases = case_logits(val, logits)
    z = cases[[f"logit{k}" for k in range(logits.shape[1])]].to_numpy()
    y = cases["y"].to_numpy()
    score, prob = val_score(y, z)
    threshold = youden_threshold(y, prob) if z.shape[1] == 2 else float("nan")
    return {
        "num-examples": int(len(cases)),
        "loss": float(loss),
        "auc": float(score) if np.isfinite(score) else 0.0,
        "threshold": float(threshold),
    }


def clip_when_asked(msg: Message, context: Context, call_next) -> Message:
    """Flower's ``fixedclipping_mod`` when the server asks for client-side clipping (DP with
    ``dp-side client``: the round's config carries the clipping norm), else nothing."""
    config = msg.content.config_records
    if msg.metadata.message_type == "train" and any(KEY_CLIPPING_NORM in c for c in config.values()):
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def make_client_app(overrides: dict | None = None, mods: list | None = None) -> ClientApp:
    """A ClientApp whose run config is DEFAULTS < the run's run_config < ``overrides`` (the
    simulation passes its options here; a deployed node gets them from ``flwr run``); ``mods``
    run before the DP clipping mod."""
    client = ClientApp(mods=[*(mods or []), clip_when_asked])

    @client.train()
    def _train(msg: Message, context: Context) -> Message:
        return local_train(msg, context, overrides)

    @client.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return local_evaluate(msg, context, overrides)

    return client


#: The Flower App's ClientApp (``bonebase.federated.client:app``).
app = make_client_app()
