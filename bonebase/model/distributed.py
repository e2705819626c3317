"""Data-parallel training (DistributedDataParallel) in processes started by ``torchrun``.

torchrun starts one process per GPU and tells each its place through the environment (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT). :func:`process_group` joins them: NCCL on CUDA,
gloo on the CPU (for tests; it brings no speed). Outside torchrun every helper here is a no-op
for a world of one, so single-process training runs exactly as it did before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

#: Environment variables torchrun sets in every worker it starts.
TORCHRUN_ENV = ("LOCAL_RANK", "WORLD_SIZE")


def launched() -> bool:
    """Whether this process is a torchrun worker."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of training processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that validates, logs and writes outputs."""
    return rank() == 0


@contextmanager
def process_group(device: str | torch.device | None = None) -> Iterator[torch.device | None]:
    """Join torchrun's process group for the block and leave it afterwards; yields this rank's
    device (``cuda:LOCAL_RANK`` when CUDA is present, else the CPU). Outside torchrun it joins
    nothing and yields ``device`` unchanged."""
    if not launched() or dist.is_initialized():
        yield None if device is None else torch.device(device)
        return
    cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if cuda:
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    dist.init_process_group(backend="nccl" if cuda else "gloo", device_id=dev if cuda else None)
    try:
        yield dev
    finally:
        dist.destroy_process_group()


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` inside DistributedDataParallel (unchanged for a world of one).

    Buffers (BatchNorm running statistics) are copied from rank 0 once, at wrapping, and not
    before every forward pass; :func:`average_buffers` makes them agree once per epoch."""
    if world_size() == 1:
        return net
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (state_dict keys without ``module.``)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of parameters that DDP does not own (e.g. a training-only head)."""
    if world_size() == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.AVG if p.is_cuda else dist.ReduceOp.SUM)
            if not p.is_cuda:  # gloo has no AVG
                p.grad.div_(world_size())


def average_buffers(net: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running mean/var) over ranks, so that every
    rank validates and saves the same model."""
    if world_size() == 1:
        return
    for b in unwrap(net).buffers():
        if b.is_floating_point():
            dist.all_reduce(b, op=dist.ReduceOp.SUM)
            b.div_(world_size())


def reduce_floats(values: list[float], *, op: str, device: torch.device) -> list[float]:
    """``values`` summed (``op="sum"``) or maximised (``op="max"``) element-wise over ranks."""
    if world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.tolist()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (picklable objects). Every rank must call it; it is a
    collective, so no rank can run ahead of a decision rank 0 has not made yet."""
    if world_size() == 1:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and tensor bytes: equal digests mean equal weights."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        h.update(name.encode())
        h.update(state_dict[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()
