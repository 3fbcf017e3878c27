"""A test-only ignite handler recording which samples each rank trained on, per epoch."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import torch.distributed as dist
from ignite.engine import Engine, Events


class SampleRecorder:
    """Write ``{epoch: [ids]}`` of ``engine.state.batch[key]`` to ``out_dir/samples_rank{R}.json`` at the end."""

    def __init__(self, out_dir: str, key: str = "dicom_id") -> None:
        self.out_dir, self.key = out_dir, key
        self.seen: dict[int, list[str]] = defaultdict(list)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(
            Events.ITERATION_COMPLETED, lambda e: self.seen[e.state.epoch].extend(e.state.batch[self.key])
        )
        engine.add_event_handler(Events.COMPLETED, self.write)

    def write(self, engine: Engine) -> None:
        rank = dist.get_rank() if dist.is_initialized() else 0
        with open(os.path.join(self.out_dir, f"samples_rank{rank}.json"), "w") as f:
            json.dump(self.seen, f)
