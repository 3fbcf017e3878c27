"""M-FLAG losses, exactly as docs/method.md#losses states them.

* alignment: ``mean over batch of (2 - 2 x̂·ŷ) + (2 - 2 ŷ·x̂) = mean(4 - 4 cos(x, y))`` on L2-normalised projections;
  no temperature and no negatives.
* orthogonality: on the raw encoder feature ``Z`` (``B × D``, not normalised, not centred), ``C = ZᵀZ / B`` and
  ``L = ½ [Σᵢ (Cᵢᵢ − 1)² + λ Σ_{i≠j} Cᵢⱼ²]`` with ``λ = 0.0051``.
* total: ``w_orth · L_orth + w_align · L_align`` with both weights 1.

Both losses run in fp32 outside autocast: under fp16 autocast ``ZᵀZ`` would be formed in half precision, where any
entry above 65504 overflows to ``inf`` (post-ReLU ResNet features reach that easily).

When ``B < D``, ``C`` has rank at most ``B`` and ``L_orth`` cannot go below :func:`orthogonality_floor`; the
pre-training log shows that floor next to the loss so that a plateau is not read as a training failure.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.loss import _Loss

from ..utils.dist import is_distributed
from .precision import at_least_fp32, no_autocast

__all__ = ["AlignmentLoss", "MFLAGLoss", "OrthogonalityLoss", "orthogonality_floor"]


def orthogonality_floor(batch_size: int, dim: int, lambd: float = 0.0051, scale: float = 0.5) -> float:
    """The lowest value the orthogonality loss can reach on ``batch_size × dim`` features
    (docs/method.md#orthogonality-floor).

    ``C = ZᵀZ/B`` has rank ≤ ``B``; the minimum ``scale·λ·D·(D − B) / ((1 − λ)·B + λ·D)`` is reached with
    ``Cᵢᵢ = 1 / (1 + λ(D/B − 1))``. It is 0 once ``B ≥ D``. Gradient accumulation does not lower it: only a larger
    batch inside one ``C`` does (``micro_batch_size`` in the pre-training bundle).
    """
    b, d = int(batch_size), int(dim)
    if b < 1 or d < 1:
        raise ValueError(f"batch_size and dim must be positive, got {b} and {d}")
    if b >= d:
        return 0.0
    return scale * lambd * d * (d - b) / ((1.0 - lambd) * b + lambd * d)


class AlignmentLoss(_Loss):
    """Symmetric cosine alignment between paired image and text projections.

    ``loss(image_proj, text_proj)`` returns ``mean_b (2 − 2 x̂_b·ŷ_b) + (2 − 2 ŷ_b·x̂_b)``. Both terms are kept as
    the paper writes them (they are equal); ``symmetric=False`` keeps one of them.
    """

    def __init__(self, symmetric: bool = True) -> None:
        super().__init__()
        self.symmetric = symmetric

    def forward(self, image_proj: torch.Tensor, text_proj: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss for ``[B, D]`` projections."""
        if image_proj.shape != text_proj.shape:
            raise ValueError(f"Projection shapes differ: {tuple(image_proj.shape)} vs {tuple(text_proj.shape)}")
        with no_autocast(image_proj.device):
            x = F.normalize(at_least_fp32(image_proj), dim=-1)
            y = F.normalize(at_least_fp32(text_proj), dim=-1)
            per_pair = 2.0 - 2.0 * (x * y).sum(-1)
            if self.symmetric:
                per_pair = per_pair + (2.0 - 2.0 * (y * x).sum(-1))
            return per_pair.mean()


class OrthogonalityLoss(_Loss):
    """Drive the (uncentred) second-moment matrix of the encoder feature towards the identity.

    Args:
        lambd: weight of the off-diagonal term (0.0051).
        scale: the factor in front of the bracket (½ in the paper).
        gather_distributed: under ``torch.distributed``, compute ``C`` over the features of all processes
            (gathered with gradients) instead of each GPU's own batch (the paper's per-GPU loss).
    """

    def __init__(self, lambd: float = 0.0051, scale: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        self.lambd = lambd
        self.scale = scale
        self.gather_distributed = gather_distributed

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss for a ``[B, D]`` feature matrix."""
        if z.ndim != 2:
            raise ValueError(f"Expected a [B, D] feature matrix, got shape {tuple(z.shape)}")
        with no_autocast(z.device):  # autocast would cast the matmul back to half precision
            z = at_least_fp32(z)
            if self.gathers():
                z = torch.cat(dist_nn.all_gather(z))  # autograd-aware: every rank gets gradients for its own rows
            c = z.T @ z / z.shape[0]
            diag = torch.diagonal(c)
            on_diag = (diag - 1.0).pow(2).sum()
            off_diag = c.pow(2).sum() - diag.pow(2).sum()
            return self.scale * (on_diag + self.lambd * off_diag)

    def gathers(self) -> bool:
        """True when ``C`` is formed over the features of all processes (gathering on and distributed)."""
        return self.gather_distributed and is_distributed()

    def floor(self, batch_size: int, dim: int) -> float:
        """:func:`orthogonality_floor` of one process's batch of ``batch_size`` (times the world size if gathering)."""
        effective = batch_size * (dist.get_world_size() if self.gathers() else 1)
        return orthogonality_floor(effective, dim, self.lambd, self.scale)


class MFLAGLoss(nn.Module):
    """The M-FLAG objective ``w_orth · L_orth + w_align · L_align``.

    Call as ``loss(output)`` with an :class:`~mflag_monai.networks.MFLAGOutput` (or
    ``loss(image_feature, image_proj, text_proj)``). Returns a dict with ``loss`` (the total, to back-propagate),
    ``loss_align`` and ``loss_orth`` (detached, for logging) and ``loss_orth_floor``, the lowest value ``loss_orth``
    can reach at this batch size and feature width (:func:`orthogonality_floor`; 0 once the batch reaches the
    width), so that ``loss_orth - loss_orth_floor`` is what training can still remove.

    Args:
        lambd: off-diagonal weight of the orthogonality loss (0.0051).
        orth_scale: the ½ factor.
        orth_weight: weight of the orthogonality loss (1).
        align_weight: weight of the alignment loss (1).
        orth_feature: ``"image_feature"`` (the raw encoder feature, the paper) or ``"image_proj"``.
        orth_gather: compute the orthogonality loss on features gathered from all GPUs (default: per GPU, the paper).
    """

    FEATURES = ("image_feature", "image_proj")

    def __init__(
        self,
        lambd: float = 0.0051,
        orth_scale: float = 0.5,
        orth_weight: float = 1.0,
        align_weight: float = 1.0,
        orth_feature: str = "image_feature",
        orth_gather: bool = False,
    ) -> None:
        super().__init__()
        if orth_feature not in self.FEATURES:
            raise ValueError(f"orth_feature must be one of {self.FEATURES}, got {orth_feature!r}")
        self.alignment = AlignmentLoss()
        self.orthogonality = OrthogonalityLoss(lambd=lambd, scale=orth_scale, gather_distributed=orth_gather)
        self.orth_weight = orth_weight
        self.align_weight = align_weight
        self.orth_feature = orth_feature

    def forward(
        self, image_feature, image_proj: torch.Tensor | None = None, text_proj: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Compute the total loss and its two parts."""
        if image_proj is None:  # called with the model's output tuple
            image_feature, image_proj, text_proj = image_feature
        align = self.alignment(image_proj, text_proj)
        orth_input = image_feature if self.orth_feature == "image_feature" else image_proj
        orth = self.orthogonality(orth_input)
        total = self.orth_weight * orth + self.align_weight * align
        floor = self.orthogonality.floor(*orth_input.shape)
        return {
            "loss": total,
            "loss_align": align.detach(),
            "loss_orth": orth.detach(),
            "loss_orth_floor": torch.tensor(floor, device=orth.device),
        }
