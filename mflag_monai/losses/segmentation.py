"""Segmentation loss of the downstream protocol (docs/method.md#segmentation): ``10 · focal(γ=2) − log(soft Dice)``."""

from __future__ import annotations

import torch
from monai.losses import DiceLoss, FocalLoss
from torch import nn

__all__ = ["FocalLogDiceLoss"]


class FocalLogDiceLoss(nn.Module):
    """``focal_weight · focal(γ) − log(soft Dice)`` on logits of a binary mask.

    The soft Dice is computed over the whole batch with smoothing 1 (as MGCA's mixed loss), through MONAI's
    ``DiceLoss`` (Dice = 1 − DiceLoss); the focal term is MONAI's sigmoid ``FocalLoss``.
    """

    def __init__(self, focal_weight: float = 10.0, gamma: float = 2.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.focal_weight = focal_weight
        self.focal = FocalLoss(gamma=gamma, use_softmax=False, reduction="mean")
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=smooth, smooth_dr=smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for ``[B, 1, H, W]`` logits and binary targets."""
        target = target.float()
        soft_dice = 1.0 - self.dice(logits, target)
        return self.focal_weight * self.focal(logits, target) - torch.log(soft_dice.clamp_min(1e-7))
