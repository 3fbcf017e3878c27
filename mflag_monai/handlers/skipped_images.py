"""The count of images lost to decoding errors, as the ``skipped_images`` epoch metric."""

from __future__ import annotations

import logging

from ignite.engine import Engine, Events

logger = logging.getLogger(__name__)

__all__ = ["SkippedImageCounter"]


class SkippedImageCounter:
    """Count the images a batch lost to decoding errors (``skipped_images`` from
    :func:`mflag_monai.data.skip_none_collate`) and report the run's total as the ``skipped_images`` epoch metric."""

    def __init__(self) -> None:
        self.count = 0

    def attach(self, engine: Engine) -> None:
        """Count after every iteration; publish at every epoch end (before the loggers that follow in the list)."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._count)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _count(self, engine: Engine) -> None:
        batch = engine.state.batch
        if isinstance(batch, dict):
            self.count += int(batch.get("skipped_images", 0))
        else:  # a list batch (skip_none_list)
            self.count += int(getattr(batch, "skipped_images", 0))

    def _publish(self, engine: Engine) -> None:
        engine.state.metrics["skipped_images"] = self.count
        if self.count:
            logger.warning("%d image(s) skipped so far because they failed to load", self.count)
