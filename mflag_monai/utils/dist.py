"""torch.distributed helpers that also work in a single process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist

__all__ = ["is_distributed", "rank", "rank_zero_first"]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


@contextmanager
def rank_zero_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (for work that writes shared files once)."""
    if is_distributed() and rank() > 0:
        dist.barrier()
    yield
    if is_distributed() and rank() == 0:
        dist.barrier()
