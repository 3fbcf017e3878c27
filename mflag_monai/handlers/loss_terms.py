"""Epoch means of every term a training iteration returns, whatever the objective names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ignite.engine import Engine, Events

from ..engines.utils import loss_terms

__all__ = ["EpochTermMeans"]


class EpochTermMeans:
    """Put the epoch mean of each scalar iteration-output term into ``engine.state.metrics`` as ``<prefix><term>``.

    Ignite's ``Average`` needs one metric per term, named in the config; the pre-training objectives return different
    terms (M-FLAG: ``loss_align``, ``loss_orth``, ...; InfoNCE: its two directions and ``temperature``), so this
    averages whatever is there. Attach it before the handlers that print or write epoch metrics (``StatsHandler``,
    TensorBoard, ``HistoryWriter``, MLflow): they run in attachment order.

    Args:
        output_transform: iteration output -> ``{term: float}`` (:func:`~mflag_monai.engines.loss_terms`).
        prefix: metric name prefix (``train_``).
        skip: terms left out (``loss``: the bundles' ``key_metric`` already averages it).
    """

    def __init__(
        self, output_transform: Callable[[Any], Mapping[str, float]] = loss_terms, prefix: str = "train_",
        skip: tuple[str, ...] = ("loss",),
    ) -> None:  # fmt: skip
        self.output_transform = output_transform
        self.prefix = prefix
        self.skip = set(skip)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def attach(self, engine: Engine) -> None:
        """Reset at each epoch start, accumulate every iteration, publish at each epoch end."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.publish)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the running sums."""
        self._sums, self._counts = {}, {}

    def update(self, engine: Engine) -> None:
        """Add this iteration's terms."""
        for key, value in self.output_transform(engine.state.output or {}).items():
            if key in self.skip:
                continue
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def publish(self, engine: Engine) -> None:
        """Write ``<prefix><term>`` = the epoch mean into ``engine.state.metrics``."""
        for key, total in self._sums.items():
            engine.state.metrics[self.prefix + key] = total / self._counts[key]
