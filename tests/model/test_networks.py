"""Networks by name, weights only from a local file, Grad-CAM on every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bonebase.errors import ConfigError, NotFoundError
from bonebase.model.gradcam import heat_maps, make_cam, peak_in_box, pointing_game
from bonebase.model.networks import ARCHS, build_network, head_layer


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_takes_grayscale_and_gives_two_logits_and_a_cam(arch):
    torch.manual_seed(0)
    net = build_network(arch).eval()
    x = torch.rand(2, 1, 64, 64)
    assert net(x).shape == (2, 2)
    assert head_layer(net, arch).out_features == 2
    maps = heat_maps(make_cam(net, arch), x, 1)
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_heat_map_peak_is_where_the_class_evidence_is():
    # The heat map must rise with the raw Grad-CAM (MONAI's default normaliser inverts it).
    torch.manual_seed(0)
    net = build_network("resnet18").eval()
    cam = make_cam(net, "resnet18")
    x = torch.rand(4, 1, 64, 64)
    checked = 0
    for cls in (0, 1):
        raw = cam.compute_map(x, class_idx=cls, layer_idx=-1).detach()
        up = torch.nn.functional.interpolate(raw, size=(64, 64), mode="bilinear").numpy()[:, 0]
        for m, r in zip(heat_maps(cam, x, cls), up, strict=True):
            if r.max() > r.min():  # an untrained net's map can be flat (all zero after ReLU)
                assert np.corrcoef(m.ravel(), r.ravel())[0, 1] > 0.99 and m.max() == 1.0
                checked += 1
    assert checked >= 2


def test_weights_only_from_an_existing_local_file(tmp_path):
    src = build_network("resnet18")
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = build_network("resnet18", weights=tmp_path / "w.pt")
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k])
    with pytest.raises(NotFoundError):
        build_network("resnet18", weights=tmp_path / "missing.pt")
    with pytest.raises(ConfigError):
        build_network("vgg16")


def test_pointing_game_counts_peaks_in_boxes():
    heat = np.zeros((10, 10))
    heat[2, 7] = 1.0  # peak at x = 7.5, y = 2.5
    assert peak_in_box(heat, (7, 2, 9, 4))
    assert not peak_in_box(heat, (0, 0, 5, 5))
    assert pointing_game(np.stack([heat, heat]), [(7, 2, 9, 4), (0, 0, 5, 5)]) == 0.5
    assert np.isnan(pointing_game(np.zeros((0, 10, 10)), []))
