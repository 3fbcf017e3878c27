"""What the handlers read from the trainers' iteration outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["loss_terms"]


def loss_terms(output: Mapping[str, Any]) -> dict[str, float]:
    """The scalar terms of one training iteration's output as floats, in output order: whatever the pre-training
    objective returns (M-FLAG: ``loss``, ``loss_align``, ``loss_orth``, ``loss_orth_floor``; InfoNCE: ``loss``, its
    two directions and ``temperature``), the detection trainer's ``loss``, ``loss_cls``, ``loss_box``; for the
    progress bar, TensorBoard and MLflow handlers. Tensors of more than one value (images) are left out."""
    return {k: float(v) for k, v in output.items() if _is_scalar(v)}


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1
