"""The contrastive image–report objective of CLIP and ConVIRT, as a pre-training alternative to M-FLAG's.

With L2-normalised projections ``x̂`` (images) and ``ŷ`` (reports) of a batch of ``B`` pairs and the logits
``S = x̂ ŷᵀ / τ``, the loss is the mean of two cross-entropies over the in-batch similarity matrix, each pair's own
partner being the right answer: ``½ [CE(S, diag) + CE(Sᵀ, diag)]``. Unlike M-FLAG's alignment loss it has negatives
(every other report of the batch), so mapping every image onto one direction does not lower it. Chance level is
``ln B``.

The temperature is fixed (ConVIRT: 0.1, the benchmark: 0.07) or learnt as in CLIP (``learn_temperature``): a
log-scale parameter, initialised at ``1/τ`` and clamped at 100. A learnt temperature is a parameter of the loss,
so the optimiser must see ``loss.parameters()`` (the pre-training bundle adds them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .precision import at_least_fp32, no_autocast

__all__ = ["InfoNCELoss"]

MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on exp(log_scale): keeps a learnt temperature from running off to 0


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE over the whole batch (the gradient-cached batch included).

    Args:
        temperature: ``τ`` (0.07), or its start when learnt.
        learn_temperature: learn ``log(1/τ)`` as CLIP does.

    Returns (from ``forward``) ``loss`` (to back-propagate), ``loss_image_to_text`` and ``loss_text_to_image`` (the
    two cross-entropies, detached) and ``temperature``.
    """

    def __init__(self, temperature: float = 0.07, learn_temperature: bool = False) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(
        self, image_feature, image_proj: torch.Tensor | None = None, text_proj: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Call with an :class:`~mflag_monai.networks.MFLAGOutput` or ``(image_feature, image_proj, text_proj)``;
        ``image_feature`` is not used (the objective acts on the projections only)."""
        if image_proj is None:
            image_feature, image_proj, text_proj = image_feature
        if image_proj.shape != text_proj.shape:
            raise ValueError(f"Projection shapes differ: {tuple(image_proj.shape)} vs {tuple(text_proj.shape)}")
        with no_autocast(image_proj.device):
            x = F.normalize(at_least_fp32(image_proj), dim=-1)
            y = F.normalize(at_least_fp32(text_proj), dim=-1)
            scale = self.log_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp().to(x.dtype)
            logits = scale * x @ y.T
            target = torch.arange(len(x), device=x.device)
            image_to_text = F.cross_entropy(logits, target)
            text_to_image = F.cross_entropy(logits.T, target)
            total = 0.5 * (image_to_text + text_to_image)
        return {
            "loss": total,
            "loss_image_to_text": image_to_text.detach(),
            "loss_text_to_image": text_to_image.detach(),
            "temperature": (1.0 / scale).detach(),
        }
