"""mflag_monai.networks.utils: one unwrap for DDP and torch.compile wrappers, and frozen parameters."""

from __future__ import annotations

from torch import nn

from mflag_monai.networks.utils import freeze_module, unwrap_model


class DDPLike(nn.Module):
    """Holds the model as ``.module``, as DistributedDataParallel does."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class CompiledLike(nn.Module):
    """Holds the model as ``._orig_mod``, as torch.compile's OptimizedModule does."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module


def test_unwrap_removes_nested_wrappers_and_keeps_a_plain_model() -> None:
    model = nn.Linear(2, 2)
    assert unwrap_model(model) is model
    assert unwrap_model(DDPLike(CompiledLike(model))) is model
    assert unwrap_model(CompiledLike(DDPLike(model))) is model


def test_freeze_module_turns_off_every_gradient() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    assert freeze_module(model) is model
    assert not any(p.requires_grad for p in model.parameters())
