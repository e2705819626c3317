"""Training loop: weighted loss for class imbalance, early stopping on validation AUC, fixed seeds,
AMP (bfloat16) and channels_last on CUDA only. The validation AUC is computed per case (mean
logits over a case's radiographs), the unit the evaluation reports. A task of more than two
classes (``normal_benign_malignant``) trains a softmax head of one logit per class, selects the
epoch by the macro one-vs-rest AUC and locks no threshold (the most probable class decides).

Inside a torchrun process group (:mod:`bonebase.model.distributed`) the same loop runs data
parallel: each rank trains on its DistributedSampler share of the global batch, rank 0 validates
and broadcasts the score, so every rank takes the same early-stopping decision."""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.utils import set_determinism
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from bonebase.errors import InputError
from bonebase.model import distributed as ddp
from bonebase.model.augment import batch_augment
from bonebase.model.checkpoint import Checkpoint, code_revision, task_classes
from bonebase.model.data import make_dataset, make_loader, png_side
from bonebase.model.infer import case_logits, run_logits, softmax, softmax_positive
from bonebase.model.lesion import LesionHead, box_masks, box_tensor
from bonebase.model.networks import build_network, gradcam_layer
from bonebase.stats import auc, youden_threshold


def _check_split(frame: pd.DataFrame, split: str, classes: list[str]) -> pd.DataFrame:
    part = frame[frame["split"] == split]
    counts = part.drop_duplicates(["site", "case_id"])["y"].value_counts()
    bad = sorted(set(part["y"].astype(int)) - set(range(len(classes))))
    if bad:
        raise InputError(
            f"the {split} split has labels {bad} outside 0..{len(classes) - 1} "
            f"({', '.join(classes)}); export and split again for this task"
        )
    if len(counts) < 2:
        raise InputError(
            f"the {split} split has cases of only one class ({dict(counts)}); training needs "
            "at least two classes in train and val: add data or change split fractions"
        )
    if split == "train" and len(counts) < len(classes):
        absent = [c for i, c in enumerate(classes) if i not in counts.index]
        raise InputError(
            f"the train split has no case of class {', '.join(absent)}; the model could never "
            "predict it: add data or change split fractions"
        )
    return part.reset_index(drop=True)


def class_weights(y: np.ndarray, num_classes: int = 2) -> torch.Tensor:
    """Inverse-frequency class weights n / (k n_c) for the cross-entropy loss (k classes)."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=num_classes).astype(float)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def val_score(y: np.ndarray, logits: np.ndarray) -> tuple[float, np.ndarray]:
    """Validation AUC of case logits (n, k) and the probabilities it was computed from: the AUC
    of P(class 1) for two classes, the macro one-vs-rest AUC over the classes present for more
    (a class absent from val is skipped: it has no AUC)."""
    if logits.shape[1] == 2:
        prob = softmax_positive(logits)
        return auc(y, prob), prob
    prob = softmax(logits)
    aucs = [auc((y == c).astype(int), prob[:, c]) for c in np.unique(y)]
    return (float(np.mean(aucs)) if len(aucs) > 1 else float("nan")), prob


class EarlyStopping:
    """Tracks the best validation score; ``update`` says whether to stop (``patience`` epochs
    in a row without a strictly better score)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -np.inf
        self.best_epoch = 0

    def update(self, score: float, epoch: int) -> tuple[bool, bool]:
        """(improved, stop) after ``epoch`` scored ``score``."""
        if score > self.best:
            self.best, self.best_epoch = score, epoch
            return True, False
        return False, epoch - self.best_epoch >= self.patience


# Batches of the precise-BN pass: 100 x 32 images estimate the statistics well; on larger data
# the pass would cost a third of an epoch for nothing (many steps an epoch: no lag to fix).
PRECISE_BN_BATCHES = 100


def recompute_bn_stats(
    net: nn.Module,
    loader,
    *,
    device: torch.device,
    cuda: bool,
    max_batches: int = PRECISE_BN_BATCHES,
) -> None:
    """Set every BatchNorm's running mean and variance to their average over ``loader``'s
    (un-augmented) training images under the current weights ("precise BN"), over at most
    ``max_batches`` batches.

    The running averages that training keeps (momentum 0.1) mix statistics of weights many steps
    old; on a small dataset, where an epoch is a handful of steps and the weights move fast,
    they lag so far that the network in eval mode scores its own training images near chance
    while its training loss is near zero. One pass without gradients fixes them."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    was_training = net.training
    net.train()
    try:
        with torch.no_grad():
            for batch in itertools.islice(loader, max_batches):
                x = batch["image"].to(device, non_blocking=True)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                net(x)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.train(was_training)


#: the fewest images a part of an epoch (``epoch_part``) may hold: BatchNorm cannot train on one
MIN_PART_IMAGES = 2


def epoch_batches(n: int, batch_size: int) -> int:
    """The batches of one training epoch of ``n`` images, as :func:`make_loader` cuts them (a
    last partial batch dropped; one batch when ``n`` is at most a batch)."""
    return n // batch_size if n > batch_size else 1


def _part_of_epoch(n: int, batch_size: int, seed: int, part: int, parts: int) -> list[int]:
    """The rows of ``part`` of ``parts`` slices of one epoch (the order drawn from ``seed``): of
    its batches as :func:`make_loader` cuts them, a last partial one dropped; with fewer batches
    than parts (a small hospital), of its images, each part one smaller batch. Refused when a
    part would hold fewer than :data:`MIN_PART_IMAGES`."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    batches = epoch_batches(n, batch_size)
    if batches < parts:
        if n < MIN_PART_IMAGES * parts:
            raise InputError(f"train.epoch_part: {n} training images cannot be cut into {parts} "
                             f"parts of at least {MIN_PART_IMAGES}: split the epoch into fewer "
                             "parts (rounds per epoch)")
        return order[part * n // parts : (part + 1) * n // parts]
    first, stop = part * batches // parts, (part + 1) * batches // parts
    return order[first * batch_size : stop * batch_size]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` or CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _val_auc(net, loader, frame, *, device, amp) -> tuple[float, np.ndarray]:
    logits, _ = run_logits(net, loader, device=device, amp=amp)
    cases = case_logits(frame, logits)
    columns = [f"logit{k}" for k in range(logits.shape[1])]
    return val_score(cases["y"].to_numpy(), cases[columns].to_numpy())


def train(
    *,
    frame: pd.DataFrame,
    data_dir: str | Path,
    task: str,
    arch: str = "resnet18",
    image_size: int = 160,
    epochs: int = 12,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    patience: int = 4,
    seed: int = 7,
    num_workers: int = 2,
    amp: bool = True,
    pretrained: str | Path | None = None,
    lesion_loss_weight: float = 0.0,
    precise_bn: bool = True,
    dataset_version: str | None = None,
    device: str | torch.device | None = None,
    log: Callable[[dict], None] | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    lr_window: tuple[int, int] | None = None,
    epoch_part: tuple[int, int] | None = None,
    optimizer_state: dict | None = None,
) -> Checkpoint:
    """Train on ``frame``'s train rows, select the epoch by validation AUC, and return the
    checkpoint of the best epoch (threshold = Youden point on validation cases).

    ``frame`` is :func:`bonebase.model.data.load_frame` output (columns image, y, split,
    site, case_id, lesion_box). Stops after ``patience`` epochs without a better validation AUC.
    ``lesion_loss_weight`` > 0 adds the lesion-box loss of :mod:`bonebase.model.lesion`.
    ``precise_bn`` recomputes BatchNorm statistics after each epoch (:func:`recompute_bn_stats`).
    ``extra_loss(net)`` is added to every batch's loss (federated FedProx's proximal term).
    ``lr_window=(offset, total)``: this call's epochs are epochs offset+1 .. offset+epochs of one
    cosine schedule over ``total`` epochs (a federated round's share of the run's schedule);
    by default the cosine runs over this call's ``epochs``.
    ``epoch_part=(part, parts)``: each epoch trains only the ``part``-th (0-based) of ``parts``
    consecutive slices of its batches, in an order drawn from ``seed`` alone, so calls with the
    same seed and parts 0 .. parts-1 train every batch of one epoch once (a federated round of
    1/parts epoch); the precise-BN pass still reads the whole train split. By default every
    batch trains.
    ``optimizer_state``: a dict carried between calls (a federated client's AdamW moments,
    kept at the hospital across rounds): AdamW starts from the per-weight state it holds, if
    any, with this call's lr and weight decay, and the call writes its final state back into it.

    In a process group of N ranks, ``batch_size`` stays the global batch (batch_size / N per
    rank, so the tuned ``lr`` still holds) and every rank returns the same checkpoint.
    """
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise InputError("train.epochs, train.batch_size and train.patience must be >= 1")
    params = {
        k: v
        for k, v in locals().items()
        if k not in ("frame", "data_dir", "log", "device", "dataset_version", "extra_loss",
                     "lr_window", "epoch_part", "optimizer_state")
    }
    params["pretrained"] = str(pretrained) if pretrained else None
    set_determinism(seed=seed)
    world, rank = ddp.world_size(), ddp.rank()
    if epoch_part is not None and (world > 1 or not 0 <= epoch_part[0] < epoch_part[1]):
        raise InputError(f"train.epoch_part {epoch_part}: (part, parts) with 0 <= part < parts, "
                         "in one process")
    if batch_size % world:
        raise InputError(
            f"train.batch_size {batch_size} is the global batch and must split evenly over "
            f"{world} processes: make it a multiple of train.nproc_per_node"
        )
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    use_amp = amp and cuda  # AMP and channels_last help on GPUs only
    classes = task_classes(task)
    k = len(classes)
    tr, va = _check_split(frame, "train", classes), _check_split(frame, "val", classes)
    ds_tr = make_dataset(tr, data_dir, image_size=image_size, cache_workers=num_workers or 1)
    aug_gen = torch.Generator().manual_seed(seed + rank)  # ranks draw different augmentations
    sampler = (
        DistributedSampler(ds_tr, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        if world > 1
        else None
    )
    dl_tr = make_loader(
        ds_tr,
        batch_size=batch_size // world,
        shuffle=True,
        num_workers=num_workers,
        cuda=cuda,
        sampler=sampler if epoch_part is None else _part_of_epoch(
            len(ds_tr), batch_size, seed, *epoch_part),
    )
    dl_bn = dl_tr if epoch_part is None else make_loader(
        ds_tr, batch_size=batch_size, shuffle=True, num_workers=num_workers, cuda=cuda)
    if epoch_part is not None:  # the parts of one epoch draw different augmentations
        aug_gen.manual_seed(seed + 1_000_003 * (epoch_part[0] + 1))
    if rank == 0:  # only rank 0 validates
        ds_va = make_dataset(va, data_dir, image_size=image_size, cache_workers=num_workers or 1)
        dl_va = make_loader(
            ds_va, batch_size=batch_size * 2, shuffle=False, num_workers=num_workers, cuda=cuda
        )
    net = build_network(arch, num_classes=k, weights=pretrained).to(dev)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    export_size = png_side(Path(data_dir) / tr["image"].iloc[0])
    boxes = box_tensor(tr["lesion_box"], export_size=export_size, image_size=image_size)
    head = LesionHead(net, gradcam_layer(arch), image_size) if lesion_loss_weight > 0 else None
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(tr["y"].to_numpy(), k).to(dev))
    trainable = list(net.parameters()) + (list(head.parameters()) if head else [])
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    if optimizer_state:  # the moments of an earlier call; this call's lr and weight decay
        opt.load_state_dict({"state": optimizer_state["state"],
                             "param_groups": opt.state_dict()["param_groups"]})
    # DDP (a no-op for one process) starts every rank from rank 0's weights and averages the
    # network's gradients; BatchNorm stays per rank (no SyncBatchNorm), averaged once an epoch.
    model = ddp.wrap(net, dev)
    if lr_window is None:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    else:  # CosineAnnealingLR's closed form, started ``offset`` epochs into the schedule
        offset, span = lr_window
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: 0.5 * (1 + math.cos(math.pi * min(offset + e, span) / span))
        )
    stopper = EarlyStopping(patience)
    best_state, best_prob = None, None
    history: list[dict] = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        model.train()
        total, seen = 0.0, 0
        for batch in dl_tr:
            x = batch["image"].to(dev, non_blocking=True)
            y = batch["label"].to(dev, non_blocking=True).long()
            b = boxes[batch["row"]]
            x = batch_augment(torch.cat([x, box_masks(b, image_size).to(dev)], 1), aug_gen)
            x, masks = x[:, :1], x[:, 1:]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", torch.bfloat16, enabled=use_amp):
                loss = loss_fn(model(x), y)
            if head is not None:
                valid = ~torch.isnan(b[:, 0]).to(dev)
                loss = loss + lesion_loss_weight * head.loss(masks, valid)
            if extra_loss is not None:
                loss = loss + extra_loss(net)
            loss.backward()
            if head is not None:
                ddp.average_gradients(head.parameters())  # the head lives outside DDP
            opt.step()
            total += float(loss.detach()) * len(y)
            seen += len(y)
        sched.step()
        if precise_bn:
            recompute_bn_stats(net, dl_bn, device=dev, cuda=cuda)
        ddp.average_buffers(net)
        val_auc, val_prob = (
            _val_auc(net, dl_va, va, device=dev, amp=use_amp) if rank == 0 else (None, None)
        )
        # Collectives: the other ranks wait here for rank 0's validation.
        total, seen = ddp.reduce_floats([total, seen], op="sum", device=dev)
        (seconds,) = ddp.reduce_floats([time.perf_counter() - started], op="max", device=dev)
        val_auc, val_prob = ddp.broadcast_object((val_auc, val_prob))
        entry = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_auc": val_auc,
            "lr": opt.param_groups[0]["lr"],
            "seconds": seconds,
            "images_per_s": seen / max(seconds, 1e-9),  # all ranks' images per second
        }
        history.append(entry)
        if log and rank == 0:
            log(entry)
        # Every rank updates its stopper with rank 0's broadcast score: the same decision.
        improved, stop = stopper.update(val_auc, epoch)
        if improved:
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            best_prob = val_prob
        if stop:
            break
    if head is not None:
        head.remove()
    if optimizer_state is not None:
        optimizer_state.clear()
        optimizer_state["state"] = {
            i: {k: v.detach().cpu().clone() for k, v in st.items()}
            for i, st in opt.state_dict()["state"].items()
        }
    threshold = None
    if k == 2:
        val_cases = case_logits(va, np.zeros((len(va), 2)))  # case order and labels only
        threshold = youden_threshold(val_cases["y"].to_numpy(), best_prob)
    params["best_epoch"], params["device"] = stopper.best_epoch, dev.type
    if world > 1:
        params["world_size"] = world
    return Checkpoint(
        arch=arch,
        task=task,
        image_size=image_size,
        state_dict=copy.deepcopy(best_state),
        threshold=threshold,
        train_params=params,
        dataset_version=dataset_version,
        code_revision=code_revision(),
        history=history,
        export_size=export_size,
    )
