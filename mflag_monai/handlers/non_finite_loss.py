"""Stop training at the first NaN or infinite loss, naming the step and the batch's files."""

from __future__ import annotations

import torch
from ignite.engine import Engine, Events

from ..utils.errors import NonFiniteLossError, non_finite_loss_error

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class StopOnNonFiniteLoss:
    """Stop training with :class:`NonFiniteLossError` at the first NaN or infinite loss, naming the step and the
    batch's files.

    Ignite's ``TerminateOnNan`` ends the run *normally*: the completion handlers would still save the diverged
    network (as "best", or as the final model) and the process would exit 0. Raising stops everything; the last
    checkpoint written is from before the divergence.

    Args:
        output_key: the loss in ``engine.state.output`` (a dict, or a list of dicts).
    """

    def __init__(self, output_key: str = "loss") -> None:
        self.output_key = output_key

    def attach(self, engine: Engine) -> None:
        """Check after every iteration (before anything at the epoch's end can save)."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Raise when this iteration's loss is not finite."""
        output = engine.state.output
        rows = output if isinstance(output, list) else [output]
        for row in rows:
            loss = row.get(self.output_key) if isinstance(row, dict) else None
            if loss is not None and not bool(torch.isfinite(torch.as_tensor(loss, dtype=torch.float32)).all()):
                value = torch.as_tensor(loss, dtype=torch.float32).reshape(-1)[0]
                raise non_finite_loss_error(value, engine.state.epoch, engine.state.iteration, engine.state.batch)
