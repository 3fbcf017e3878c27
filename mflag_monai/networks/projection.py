"""M-FLAG projection heads (docs/method.md#projection-heads)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Sequential):
    """Linear → BatchNorm1d → ReLU → Linear → BatchNorm1d(affine=False).

    The same shape serves both modalities: ``in_dim`` is 2048 for the ResNet-50 feature (vision projector) or the
    language model's hidden size (text projector); ``hidden_dim`` 2048 and ``out_dim`` 1024 as in the paper.
    The last BatchNorm has no affine parameters, as in the authors' heads.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 1024) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
            nn.BatchNorm1d(out_dim, affine=False),
        )
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``[B, in_dim]`` to ``[B, out_dim]``."""
        for layer in self:  # nn.Sequential's loop, written out: TorchScript cannot compile super().forward
            x = layer(x)
        return x
