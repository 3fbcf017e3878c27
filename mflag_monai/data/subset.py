"""Fixed subsets of a datalist, preprocessed and batched for the model outside the training loop: what the
latent-geometry diagnostics, the BatchNorm recalibration and the geometry evaluation run over."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from monai.data import CacheDataset, Dataset, list_data_collate

if TYPE_CHECKING:
    from ..networks.mflag import TextInputs

logger = logging.getLogger(__name__)

__all__ = ["fixed_subset", "model_batches", "select_split", "subset_dataset"]


def fixed_subset(data: Sequence[Mapping], max_samples: int | None) -> list[Mapping]:
    """At most ``max_samples`` entries spread evenly over ``data`` (the same ones every call; ``None``/0: all).

    Evenly spaced rather than the first ones: prepared datalists are sorted by patient, so a prefix would see few.
    """
    data = list(data)
    if not max_samples or len(data) <= max_samples:
        return data
    return [data[i * len(data) // max_samples] for i in range(max_samples)]


def select_split(
    data: Mapping[str, Sequence[Mapping]] | Sequence[Mapping],
    split: str,
    fallback: str | None = "training",
    min_samples: int = 2,
) -> tuple[str, list[Mapping]]:
    """``(split name, entries)`` of a datalist dict; ``fallback`` when ``split`` has fewer than ``min_samples`` entries.

    A plain list of entries is returned as it is (named ``split``).
    """
    if not isinstance(data, Mapping):
        return split, list(data)
    entries = list(data.get(split) or [])
    if len(entries) < min_samples and fallback and fallback != split and len(data.get(fallback) or []) >= min_samples:
        logger.warning("Split %r has %d entries; using %r instead.", split, len(entries), fallback)
        return fallback, list(data[fallback])
    return split, entries


def subset_dataset(
    entries: Sequence[Mapping], transform: Callable, cache: bool, skip_bad_images: bool, label: str
) -> Sequence[Mapping]:
    """A preprocessed dataset of a fixed subset: bad images left out (counted) with ``skip_bad_images``, else cached
    in memory or not. ``label`` names the subset in skip reports."""
    if skip_bad_images:
        from .dataset import build_eval_dataset

        return build_eval_dataset(entries, transform, True, label)
    if cache:
        return CacheDataset(entries, transform, num_workers=None, progress=False)
    return Dataset(entries, transform)


def model_batches(
    dataset: Sequence[Mapping],
    text_inputs: Callable[[dict], TextInputs],
    device: torch.device | str,
    batch_size: int,
    image_key: str = "image",
    min_size: int = 1,
) -> Iterator[tuple[torch.Tensor, list[str] | None, torch.Tensor | None]]:
    """``(images, texts, text_features)`` per batch of ``dataset``, ready for ``MFLAG.forward`` on ``device``.

    Batches are collated by hand rather than by a ``DataLoader``: a loader draws its base seed from the global RNG,
    and diagnostics must not change the training run they observe. Items that failed to load (``None``) are left
    out, and batches smaller than ``min_size`` are skipped (BatchNorm needs 2 for batch statistics).
    """
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        items = [item for item in items if item is not None]
        if not items or len(items) < min_size:
            continue
        batch = list_data_collate(items)
        texts, features = text_inputs(batch)
        if features is not None:
            features = torch.as_tensor(features).to(device).float()
        images = batch[image_key]
        # a MetaTensor's metadata tracking only slows the forward pass down
        images = images.as_tensor() if hasattr(images, "as_tensor") else torch.as_tensor(images)
        yield images.to(device).float(), texts, features
