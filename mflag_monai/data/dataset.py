"""Datasets with the preprocessing cache: decode each DICOM once, augment every epoch."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from monai.data import CacheDataset, Dataset, PersistentDataset

__all__ = ["CACHE_MODES", "build_dataset"]

CACHE_MODES = ("persistent", "memory", "none")


def build_dataset(
    data: Sequence[dict],
    transform: Callable,
    cache: str = "persistent",
    cache_dir: str | os.PathLike | None = None,
    signature: str = "",
    num_workers: int | None = 1,
) -> Dataset:
    """A MONAI dataset that caches everything before the first random transform.

    Args:
        data: datalist entries.
        transform: a flat ``Compose`` (deterministic loading/resizing first, random augmentation after).
        cache: ``"persistent"`` (MONAI ``PersistentDataset`` on disk: survives restarts, shared by workers),
            ``"memory"`` (``CacheDataset``) or ``"none"``.
        cache_dir: root folder of the persistent cache.
        signature: what the cached part depends on (e.g. ``"resize=256,uint8"``): MONAI keys cache files by the data
            item only, so each signature gets its own sub-folder and a changed setting never reads stale images.
        num_workers: threads used to fill a memory cache.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
    if cache == "persistent":
        if cache_dir is None:
            raise ValueError("cache='persistent' needs a cache_dir")
        folder = Path(cache_dir) / hashlib.sha1(signature.encode()).hexdigest()[:12]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "signature.txt").write_text(signature + "\n")
        return PersistentDataset(data=list(data), transform=transform, cache_dir=folder)
    if cache == "memory":
        return CacheDataset(data=list(data), transform=transform, num_workers=num_workers, progress=True)
    return Dataset(data=list(data), transform=transform)
