"""MONAI classification networks by name, for one-channel (grayscale) radiographs.

Every network ends in ``num_classes`` logits (2 by default: [benign-like, positive]; 3 for
normal/benign/malignant, read through a softmax). Weights are loaded only from an explicit local
path; nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks import nets
from torch import nn

from bonebase.errors import ConfigError, InputError, NotFoundError

ARCHS = (
    "resnet18", "resnet34", "resnet10-slim", "resnet18-slim", "densenet121", "efficientnet-b0",
)  # fmt: skip
# "-slim" ResNets have half the channels (32-64-128-256): about a quarter of the compute, which
# buys a 2x larger input side on a CPU, where fine lesion texture matters more than width. They
# pool the last feature map by its maximum: a lesion covers a few of its cells, and an average
# over the whole film dilutes it with bone and background.
_RESNETS = {
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "resnet34": ((3, 4, 6, 3), (64, 128, 256, 512)),
    "resnet10-slim": ((1, 1, 1, 1), (32, 64, 128, 256)),
    "resnet18-slim": ((2, 2, 2, 2), (32, 64, 128, 256)),
}

# Grad-CAM target layer (last convolutional stage) and the head layer whose *input* is the
# penultimate feature vector used for t-SNE.
_GRADCAM_LAYER = {
    "resnet18": "layer4",
    "resnet34": "layer4",
    "resnet10-slim": "layer4",
    "resnet18-slim": "layer4",
    "densenet121": "class_layers.relu",
    "efficientnet-b0": "_conv_head",
}
_HEAD_LAYER = {
    "resnet18": "fc",
    "resnet34": "fc",
    "resnet10-slim": "fc",
    "resnet18-slim": "fc",
    "densenet121": "class_layers.out",
    "efficientnet-b0": "_fc",
}


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ConfigError(f"train.arch={arch!r} is not known; choose one of {', '.join(ARCHS)}")


def build_network(
    arch: str, *, num_classes: int = 2, in_channels: int = 1, weights: str | Path | None = None
) -> nn.Module:
    """A 2-D MONAI classifier ``arch`` with ``in_channels`` inputs and ``num_classes`` logits.

    ``weights``: a local ``state_dict`` file (or a checkpoint holding one under ``"state_dict"``);
    keys whose shapes do not match (e.g. an RGB stem or a 1000-class head) are skipped.
    """
    _check_arch(arch)
    if arch in _RESNETS:
        layers, widths = _RESNETS[arch]
        # Stride-2 stem as in the ImageNet ResNet: MONAI's default stride 1 (made for small 3-D
        # volumes) costs 4x the compute for the same image size.
        net: nn.Module = nets.ResNet(
            "basic",
            list(layers),
            list(widths),
            spatial_dims=2,
            n_input_channels=in_channels,
            num_classes=num_classes,
            conv1_t_stride=2,
        )
        if arch.endswith("-slim"):
            net.avgpool = nn.AdaptiveMaxPool2d(1)
    elif arch == "densenet121":
        net = nets.DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
    else:
        net = nets.EfficientNetBN(
            arch, pretrained=False, spatial_dims=2, in_channels=in_channels, num_classes=num_classes
        )
    if weights is not None:
        load_partial_weights(net, weights)
    return net


def load_partial_weights(net: nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors from a local weights file into ``net``; returns the skipped keys."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(
            f"train.pretrained={path}: no such file; give a local weights file (nothing is "
            "downloaded) or set it to null"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise InputError(f"{path}: not a PyTorch weights file ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise InputError(f"{path}: no tensor matches the network's layers; wrong architecture?")
    net.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def gradcam_layer(arch: str) -> str:
    """Name of the layer Grad-CAM reads for ``arch`` (``layer4`` for ResNets)."""
    _check_arch(arch)
    return _GRADCAM_LAYER[arch]


def head_layer(net: nn.Module, arch: str) -> nn.Module:
    """The final linear layer of ``net``; its input is the penultimate feature vector."""
    _check_arch(arch)
    return net.get_submodule(_HEAD_LAYER[arch])
