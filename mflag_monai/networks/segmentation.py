"""U-Net on the pre-trained encoder (docs/method.md#segmentation: MONAI ``FlexibleUNet`` with a ResNet-50 backbone).

``FlexibleUNet``'s ResNet-50 backbone has the torchvision layout of :class:`ResNetEncoder`, but its ResNet-18/34
use zero-padding shortcuts (type A) instead of torchvision's 1×1 convolutions; so the backbone is replaced by a
:class:`ResNetEncoder` that returns the five feature maps the U-Net decoder expects, and the pre-trained weights of
any depth load strictly into ``unet.encoder``.
"""

from __future__ import annotations

import logging
import os

import torch
from monai.networks.nets import FlexibleUNet

from .image_encoder import ResNetEncoder, load_encoder_state_dict, load_weights_file
from .pretrained import check_pretrained_encoder
from .utils import FrozenEncoderMixin, check_encoder_bn, freeze_module

logger = logging.getLogger(__name__)

__all__ = ["FrozenEncoderUNet", "UNetBackbone", "build_segmentation_unet"]


class UNetBackbone(ResNetEncoder):
    """:class:`ResNetEncoder` returning ``[stem, layer1, layer2, layer3, layer4]``, as ``FlexibleUNet`` consumes."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """The stem output (before max-pooling) and the four stage outputs."""
        stem = self.act(self.bn1(self.conv1(x)))
        x1 = self.layer1(self.maxpool(stem))  # stages called one by one so that TorchScript can compile them
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        return [stem, x1, x2, x3, self.layer4(x3)]


class FrozenEncoderUNet(FrozenEncoderMixin, FlexibleUNet):
    """``FlexibleUNet`` whose encoder can be frozen: no gradients, and BatchNorm statistics kept (eval mode).

    Args:
        depth: ResNet depth of the backbone (18, 34, 50).
        out_channels: mask channels (1 for a binary mask with a sigmoid).
        pretrained_encoder: encoder weights (``models/encoder.pt`` of the pre-training bundle) or ``None``.
        freeze_encoder: freeze the encoder (the protocol); ``False`` fine-tunes it.
    """

    def __init__(
        self,
        depth: int = 50,
        out_channels: int = 1,
        pretrained_encoder: str | os.PathLike | None = None,
        freeze_encoder: bool = True,
        in_channels: int = 3,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            backbone=f"resnet{depth}",
            pretrained=False,
            spatial_dims=2,
        )
        self.encoder = UNetBackbone(depth, in_channels)  # torchvision layout at every depth (see the module doc)
        path = check_pretrained_encoder(pretrained_encoder)
        if path is not None:
            load_encoder_state_dict(self.encoder, load_weights_file(path), strict=True, source=path)
            logger.info("Loaded the pre-trained encoder from %s", path)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze_module(self.encoder)


def build_segmentation_unet(
    depth: int = 50,
    out_channels: int = 1,
    pretrained_encoder: str | os.PathLike | None = None,
    freeze_encoder: bool = True,
    encoder_bn: str = "frozen",
) -> FrozenEncoderUNet:
    """A 2D U-Net on a (pre-trained, frozen) ResNet encoder; ``encoder_bn``: what a frozen encoder's BatchNorm does in
    training (:data:`~mflag_monai.networks.utils.ENCODER_BN_MODES`)."""
    network = FrozenEncoderUNet(depth, out_channels, pretrained_encoder, freeze_encoder)
    network.encoder_bn = check_encoder_bn(encoder_bn)
    return network
