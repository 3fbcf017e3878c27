"""Precision helpers shared by the pre-training losses: they compute in fp32 whatever autocast the caller runs (under
fp16, ``ZᵀZ`` of post-ReLU features overflows and cosine similarities lose their small differences)."""

from __future__ import annotations

import torch

__all__ = ["at_least_fp32", "no_autocast"]


def no_autocast(device: torch.device):
    """A context that turns autocast off on ``device``'s type."""
    return torch.autocast(device_type=device.type, enabled=False)


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 if it is in a half-precision type; fp64 stays fp64 (the reference tests use it)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
