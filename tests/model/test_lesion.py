"""Lesion-box supervision: boxes → masks, and a training-only head that learns where they are."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from bonebase.model.lesion import LesionHead, box_masks, box_tensor
from bonebase.model.networks import build_network, gradcam_layer


def test_box_tensor_scales_to_the_model_input_and_keeps_unknown_boxes_as_nan():
    boxes = box_tensor(
        pd.Series(["10 20 30 40", "", float("nan")]), export_size=256, image_size=128
    )
    assert boxes[0].tolist() == [5.0, 10.0, 15.0, 20.0]
    assert all(math.isnan(v) for v in boxes[1].tolist() + boxes[2].tolist())


def test_box_masks_cover_the_pixels_whose_centres_lie_in_the_box():
    masks = box_masks(torch.tensor([[1.0, 2.0, 3.0, 2.9], [float("nan")] * 4]), 6)
    assert masks.shape == (2, 1, 6, 6)
    assert masks[0, 0].nonzero().tolist() == [[2, 1], [2, 2]]  # rows 2, columns 1-2
    assert float(masks[1].sum()) == 0.0


def test_head_learns_the_lesion_and_leaves_no_trace_on_the_network():
    torch.manual_seed(0)
    net = build_network("resnet10-slim")
    head = LesionHead(net, gradcam_layer("resnet10-slim"), 64)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        xy = torch.randint(0, 40, (8, 2), generator=gen).float()
        boxes = torch.cat([xy, xy + 20], 1)
        masks = box_masks(boxes, 64)
        x = 0.2 + 0.6 * masks  # the "lesion" is the bright square
        net(x)
        loss = head.loss(masks, torch.ones(8, dtype=torch.bool))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    # Images without a box add nothing.
    net(x)
    assert float(head.loss(masks, torch.zeros(8, dtype=torch.bool)).detach()) == 0.0
    head.remove()
    net(x)
    assert head._features is None
    with pytest.raises(RuntimeError, match="forward pass"):
        head.loss(masks, torch.ones(8, dtype=torch.bool))
