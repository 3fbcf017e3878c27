"""Helpers shared by the networks of the package: unwrapping DDP/``torch.compile``, freezing an encoder, and
BatchNorm running statistics kept across a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["FrozenEncoderMixin", "batchnorm_statistics_kept", "freeze_module", "unwrap_model"]


def unwrap_model(network: nn.Module) -> nn.Module:
    """The plain model under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers, however nested."""
    while True:
        inner = getattr(network, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(network, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return network
        network = inner


def freeze_module(module: nn.Module) -> nn.Module:
    """``requires_grad=False`` on every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class FrozenEncoderMixin:
    """For models with an ``encoder`` and a ``freeze_encoder`` flag: a frozen encoder stays in eval mode whatever
    ``train()`` asks, so its BatchNorm statistics remain the pre-trained ones (the downstream protocol)."""

    def train(self, mode: bool = True):
        """Train the rest of the model; a frozen encoder stays in eval mode."""
        super().train(mode)  # type: ignore[misc]
        if self.freeze_encoder:  # type: ignore[attr-defined]
            self.encoder.eval()  # type: ignore[attr-defined]
        return self


@contextlib.contextmanager
def batchnorm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Run the block with BatchNorm normalising by batch statistics as usual, then put the running statistics back.

    The gradient-cached step encodes every image twice (without, then with autograd), and the running statistics
    must see each image once, as in a plain step; the diagnostics look at the network with batch statistics without
    changing it.
    """
    saved = [
        (m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in module.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, count in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
