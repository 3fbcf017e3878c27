"""Helpers shared by the networks of the package: unwrapping DDP/``torch.compile``, freezing an encoder, and
BatchNorm running statistics kept across a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "ENCODER_BN_MODES",
    "FrozenEncoderMixin",
    "batchnorm_statistics_kept",
    "check_encoder_bn",
    "freeze_module",
    "unwrap_model",
]


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


#: What a frozen encoder's BatchNorm does in downstream training: ``frozen`` (eval mode: the pre-trained running
#: statistics normalise, and stay) or ``batch_stats`` (train mode: batch statistics normalise and the running
#: statistics follow the downstream data, as MGCA's Lightning code runs an encoder frozen by ``requires_grad=False``).
ENCODER_BN_MODES = ("frozen", "batch_stats")


def check_encoder_bn(mode: str) -> str:
    """``mode`` when it is one of :data:`ENCODER_BN_MODES`; otherwise a one-line error naming the setting."""
    if mode not in ENCODER_BN_MODES:
        from ..utils.errors import InputError

        raise InputError(f"expected one of {', '.join(ENCODER_BN_MODES)}, got {mode!r}", "--encoder_bn")
    return mode


class FrozenEncoderMixin:
    """For models with an ``encoder`` and a ``freeze_encoder`` flag: a frozen encoder stays in eval mode whatever
    ``train()`` asks, so its BatchNorm statistics remain the pre-trained ones (the downstream protocol), unless
    ``encoder_bn`` is ``"batch_stats"`` (:data:`ENCODER_BN_MODES`)."""

    # No class annotation: TorchScript cannot read the postponed (string) annotations of this module.
    encoder_bn = "frozen"

    def train(self, mode: bool = True):
        """Train the rest of the model; a frozen encoder stays in eval mode (with ``encoder_bn="frozen"``)."""
        super().train(mode)  # type: ignore[misc]
        if self.freeze_encoder and self.encoder_bn == "frozen":  # type: ignore[attr-defined]
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
