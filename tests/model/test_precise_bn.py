"""Precise BatchNorm statistics: after ``recompute_bn_stats`` the running mean is the mean over
the training images under the current weights, not a lagging momentum average."""

from __future__ import annotations

import torch
from torch import nn

from bonebase.model.train import recompute_bn_stats


def test_running_stats_become_the_average_over_the_loader():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2))
    bn = net[1]
    bn.running_mean.fill_(5.0)  # stale statistics from "old weights"
    bn.running_var.fill_(9.0)
    batches = [{"image": torch.randn(4, 1, 3, 3) * 2 + 1} for _ in range(3)]
    net.eval()
    recompute_bn_stats(net, batches, device=torch.device("cpu"), cuda=False)
    with torch.no_grad():
        feats = [net[0](b["image"]) for b in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-5)
    assert bn.momentum == 0.1 and not net.training  # momentum and mode restored


def test_the_pass_is_bounded():
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    seen = []

    def batches():
        for i in range(10):
            seen.append(i)
            yield {"image": torch.randn(2, 1, 2, 2)}

    recompute_bn_stats(net, batches(), device=torch.device("cpu"), cuda=False, max_batches=3)
    assert len(seen) == 3 and net[1].num_batches_tracked == 3
