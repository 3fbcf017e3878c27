"""Classification heads on the pre-trained encoder: the linear probe of the protocol, or full fine-tuning."""

from __future__ import annotations

import os

import torch
from torch import nn

from .image_encoder import ResNetEncoder, build_image_encoder
from .pretrained import check_pretrained_encoder
from .utils import FrozenEncoderMixin, check_encoder_bn, freeze_module

__all__ = ["CXRClassifier", "build_classifier"]


class CXRClassifier(FrozenEncoderMixin, nn.Module):
    """``Linear(feature_dim → num_classes)`` on the pooled encoder feature; logits out.

    With ``freeze_encoder`` (the linear-probe protocol) the encoder has no gradients and stays in eval mode, so its
    BatchNorm statistics are the pre-trained ones.
    """

    def __init__(
        self, encoder: ResNetEncoder, num_classes: int, freeze_encoder: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.feature_dim, num_classes))
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze_module(self.encoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        if self.freeze_encoder:
            with torch.no_grad():
                feature = self.encoder(x)
        else:
            feature = self.encoder(x)
        return self.head(feature)


def build_classifier(
    num_classes: int,
    depth: int = 50,
    pretrained_encoder: str | os.PathLike | None = None,
    freeze_encoder: bool = True,
    dropout: float = 0.0,
    encoder_bn: str = "frozen",
) -> CXRClassifier:
    """A linear probe (``freeze_encoder=True``) or a fine-tuned classifier on a (pre-trained) ResNet encoder;
    ``encoder_bn``: what a frozen encoder's BatchNorm does in training (:data:`~mflag_monai.networks.utils.ENCODER_BN_MODES`)."""
    encoder = build_image_encoder(depth, pretrained_weights=check_pretrained_encoder(pretrained_encoder))
    network = CXRClassifier(encoder, num_classes, freeze_encoder, dropout)
    network.encoder_bn = check_encoder_bn(encoder_bn)
    return network
