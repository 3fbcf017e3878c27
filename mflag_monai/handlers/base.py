"""The shared shape of the handlers that gather an evaluation's outputs and write one file at the end."""

from __future__ import annotations

from ignite.engine import Engine, Events

__all__ = ["ReportWriter", "output_rows"]


def output_rows(engine: Engine) -> list:
    """The engine's iteration output as a list of rows (a decollated output already is one; a dict is one row)."""
    output = engine.state.output
    return output if isinstance(output, list) else [output]


class ReportWriter:
    """Base of the handlers that collect something after every iteration and write it when the engine completes.

    ``attach`` registers :meth:`reset` at ``STARTED``, :meth:`collect` at ``ITERATION_COMPLETED`` and :meth:`write`
    at ``COMPLETED``; subclasses implement the last two (and :meth:`reset` when a new run must start empty).
    """

    def attach(self, engine: Engine) -> None:
        """Collect after each iteration, write on completion."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _started(self, engine: Engine) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget what a previous run collected (nothing by default)."""

    def collect(self, engine: Engine) -> None:
        """Keep what this iteration's output holds."""
        raise NotImplementedError

    def write(self, engine: Engine) -> None:
        """Write the file(s)."""
        raise NotImplementedError
