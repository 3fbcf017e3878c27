"""Pre-training objectives by name: the bundle's ``objective`` setting picks one.

An objective is an ``nn.Module`` called with the model's :class:`~mflag_monai.networks.MFLAGOutput` (image feature,
image projection, report projection) of the whole batch; it returns a dict whose ``loss`` is back-propagated and whose
other scalar entries are logged as they are (progress bar, epoch means, TensorBoard, MLflow, ``history.json``).
Parameters of the objective (a learnt temperature) are trained with the model's.

A new objective is one module with such a class and one line registering it, e.g. in ``losses/my_objective.py``::

    @register_objective("my-objective")
    class MyObjective(nn.Module): ...

imported from :mod:`mflag_monai.losses`, then a settings block ``my-objective: {...}`` under the bundle's ``loss``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .infonce import InfoNCELoss
from .mflag import MFLAGLoss

__all__ = ["OBJECTIVES", "build_objective", "register_objective"]

OBJECTIVES: dict[str, type[nn.Module]] = {"mflag": MFLAGLoss, "infonce": InfoNCELoss}


def register_objective(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``cls`` the objective called ``name``."""

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        if name in OBJECTIVES and OBJECTIVES[name] is not cls:
            raise ValueError(f"objective {name!r} is already registered ({OBJECTIVES[name].__name__})")
        OBJECTIVES[name] = cls
        return cls

    return register


def build_objective(name: str, **settings: Mapping[str, Any] | None) -> nn.Module:
    """The objective ``name`` built from ``settings[name]`` (one mapping of constructor arguments per objective, so a
    config can hold every objective's settings and switch with one value); the other objectives' settings are unused.
    """
    if name not in OBJECTIVES:
        from ..utils.errors import InputError  # a user's setting: one line, not a traceback

        raise InputError(f"unknown objective {name!r}: choose one of {', '.join(sorted(OBJECTIVES))}", "--objective")
    return OBJECTIVES[name](**dict(settings.get(name) or {}))
