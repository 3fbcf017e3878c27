"""Steady-state training throughput and how long the trainer waited for its data loader.

Attach :class:`ThroughputMeter` to a trainer (``scripts/benchmark_throughput.py`` does it for the pre-training
bundle). Each iteration is split into *waiting for data* (``GET_BATCH_STARTED`` → ``GET_BATCH_COMPLETED``: the
loader's ``next()``), *the step* (copy to the device, device augmentation, forward, backward, optimizer) and what
runs after it until the next fetch (other handlers; at epoch ends checkpoints and diagnostics). On CUDA
the meter synchronises at the end of each iteration, so the step's time is the GPU's and, while the trainer waits
for data, the GPU is idle: the data-wait share is the fraction of time the GPU waited for the CPU.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from ignite.engine import Engine, Events

__all__ = ["ThroughputMeter"]

logger = logging.getLogger(__name__)


class ThroughputMeter:
    """Images/s and the data-wait share of a trainer's run, after ``warmup_iterations`` iterations.

    Args:
        warmup_iterations: iterations left out at the start (cuDNN autotuning, worker start-up, cache filling).
        image_key: the batch key whose length is the number of images.
        filepath: where to write the summary as JSON at the end of the run (optional).
    """

    def __init__(
        self, warmup_iterations: int = 10, image_key: str = "image", filepath: str | Path | None = None
    ) -> None:
        self.warmup_iterations = warmup_iterations
        self.image_key = image_key
        self.filepath = Path(filepath) if filepath is not None else None
        self.records: list[tuple[int, float, float, float]] = []  # (images, data wait, step, after-step) seconds
        self._fetch_start = self._fetch_end = 0.0
        self._step_end: float | None = None
        self._images = 0
        self.summary: dict[str, float] = {}

    def attach(self, engine: Engine) -> ThroughputMeter:
        """Register the event handlers on ``engine``."""
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._batch_started)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._batch_completed)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        return self

    def _batch_started(self, engine: Engine) -> None:
        now = time.perf_counter()
        self._close(now)
        self._fetch_start = now

    def _batch_completed(self, engine: Engine) -> None:
        self._fetch_end = time.perf_counter()

    def _iteration_completed(self, engine: Engine) -> None:
        device = torch.device(getattr(engine.state, "device", None) or "cpu")
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the step's GPU work is done: the next fetch is GPU idle time
        self._step_end = time.perf_counter()
        batch = engine.state.batch or {}
        self._images = len(batch[self.image_key]) if self.image_key in batch else 0

    def _close(self, now: float) -> None:
        """Record the finished iteration: its images, data wait, step, and what ran after it (other handlers,
        epoch ends: checkpoints, diagnostics) until the next fetch."""
        if self._step_end is None:
            return
        wait, step = self._fetch_end - self._fetch_start, self._step_end - self._fetch_end
        self.records.append((self._images, wait, step, now - self._step_end))
        self._step_end = None

    def summarise(self) -> dict[str, float]:
        """Images, seconds, images/s and the data-wait share over the iterations after the warm-up."""
        steady = self.records[self.warmup_iterations :]
        n = len(steady)
        images = sum(r[0] for r in steady)
        wait, step, other = (sum(r[i] for r in steady) for i in (1, 2, 3))
        total = wait + step + other
        return {
            "iterations": n,
            "warmup_iterations": min(self.warmup_iterations, len(self.records)),
            "images": images,
            "seconds": total,
            "images_per_s": images / total if total else float("nan"),
            "data_wait_fraction": wait / total if total else float("nan"),
            "data_wait_ms_per_iteration": 1000 * wait / n if n else float("nan"),
            "step_ms_per_iteration": 1000 * step / n if n else float("nan"),
            "other_ms_per_iteration": 1000 * other / n if n else float("nan"),
        }

    def _completed(self, engine: Engine) -> None:
        self._close(time.perf_counter())
        self.summary = self.summarise()
        s = self.summary
        logger.info(
            f"throughput: {s['images_per_s']:.1f} images/s over {s['iterations']} iterations after "
            f"{s['warmup_iterations']} warm-up; waiting for data {100 * s['data_wait_fraction']:.1f}% of the time"
        )
        if self.filepath is not None:
            self.filepath.parent.mkdir(parents=True, exist_ok=True)
            self.filepath.write_text(json.dumps(s, indent=2) + "\n")
