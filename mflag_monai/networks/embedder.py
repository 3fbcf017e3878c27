"""The pre-trained M-FLAG model without its language model: what the pre-training bundle's inference runs.

Its ``state_dict`` is exactly that of :class:`~mflag_monai.networks.MFLAG` (``models/model.pt`` loads strictly), and its
``forward`` takes images only and returns one tensor, so MONAI's ``verify_net_in_out`` and ``ckpt_export``
(TorchScript) work on it as on any other bundle's ``network_def``.
"""

from __future__ import annotations

import torch
from torch import nn

from .image_encoder import build_image_encoder
from .projection import ProjectionHead

__all__ = ["MFLAGImageEmbedder", "build_image_embedder"]


class MFLAGImageEmbedder(nn.Module):
    """Image encoder + image projector (+ the text projector, used to score reports), no language model.

    ``forward(images)`` returns ``[B, feature_dim + proj_out_dim]``: the encoder feature (channels ``0 ..
    feature_dim - 1``, 2048 for ResNet-50; what the downstream bundles start from) followed by the image projection in
    the space shared with the reports (``proj_out_dim`` channels, 1024). :meth:`split` separates them.

    Args:
        depth: ResNet depth of the encoder (18, 34, 50).
        text_hidden_size: the language model's hidden size (the text projector's input width).
        proj_hidden_dim, proj_out_dim: projector widths (2048, 1024).
    """

    def __init__(
        self, depth: int = 50, text_hidden_size: int = 384, proj_hidden_dim: int = 2048, proj_out_dim: int = 1024
    ) -> None:
        super().__init__()
        self.image_encoder = build_image_encoder(depth)
        self.feature_dim = int(self.image_encoder.feature_dim)
        self.image_projector = ProjectionHead(self.feature_dim, proj_hidden_dim, proj_out_dim)
        self.text_projector = ProjectionHead(int(text_hidden_size), proj_hidden_dim, proj_out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, feature_dim + proj_out_dim]`` (feature, then projection)."""
        feature = self.image_encoder(images)
        return torch.cat([feature, self.image_projector(feature)], dim=1)

    def split(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(feature [B, feature_dim], projection [B, proj_out_dim])`` of a :meth:`forward` output."""
        return output[:, : self.feature_dim], output[:, self.feature_dim :]


def build_image_embedder(
    depth: int = 50, text_hidden_size: int = 384, proj_hidden_dim: int = 2048, proj_out_dim: int = 1024
) -> MFLAGImageEmbedder:
    """An :class:`MFLAGImageEmbedder` with random weights (the bundle loads ``models/model.pt`` into it)."""
    return MFLAGImageEmbedder(depth, text_hidden_size, proj_hidden_dim, proj_out_dim)
