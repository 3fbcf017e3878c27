"""What the handlers read from the trainers' iteration outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["loss_terms"]


def loss_terms(output: Mapping[str, Any]) -> dict[str, float]:
    """The loss terms of one training iteration's output as floats: every ``loss*`` entry, in output order (the
    pre-training engine's ``loss``, ``loss_align``, ``loss_orth``, ``loss_orth_floor``; the detection trainer's
    ``loss``, ``loss_cls``, ``loss_box``), for the progress bar, TensorBoard and MLflow handlers."""
    return {k: float(v) for k, v in output.items() if k.startswith("loss")}
