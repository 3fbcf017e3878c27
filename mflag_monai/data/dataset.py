"""Datasets with the preprocessing cache: decode each DICOM once, augment every epoch."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from monai.data import CacheDataset, Dataset, PersistentDataset, list_data_collate
from monai.data.utils import pickle_hashing
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Subset

from ..utils.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_MODES",
    "ImageCacheDataset",
    "SkipBadImages",
    "SkippingCacheDataset",
    "build_dataset",
    "build_eval_dataset",
    "collate_fn",
    "source_file_hash",
    "skip_none_collate",
    "skip_none_list",
]

CACHE_MODES = ("persistent", "memory", "none")


def build_dataset(
    data: Sequence[dict],
    transform: Callable,
    cache: str = "persistent",
    cache_dir: str | os.PathLike | None = None,
    signature: str = "",
    num_workers: int | None = 1,
    skip_bad_images: bool = False,
    image_key: str = "image",
    file_key: str | None = "image_path",
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
        skip_bad_images: images that fail to decode are skipped (logged, and counted by :func:`skip_none_collate`,
            which the data loader must then use) instead of stopping the run.
        image_key: the image path key; with ``cache="persistent"`` only this key's transformed image is stored on
            disk (never the report text or any other field of the entry).
        file_key: each item keeps its image file path under this key (batches can then name their files, e.g. when
            a loss turns NaN); ``None`` to leave the entries as they are.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
    if file_key:
        data = [{**e, file_key: str(e.get(image_key, ""))} if isinstance(e, dict) else e for e in data]
    if cache == "persistent":
        if cache_dir is None:
            raise ValueError("cache='persistent' needs a cache_dir")
        folder = Path(cache_dir) / hashlib.sha1(signature.encode()).hexdigest()[:12]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "signature.txt").write_text(signature + "\n")
        dataset = ImageCacheDataset(data=list(data), transform=transform, cache_dir=folder, cache_keys=(image_key,))
    elif cache == "memory":
        cache_class = SkippingCacheDataset if skip_bad_images else CacheDataset
        dataset = cache_class(data=list(data), transform=transform, num_workers=num_workers, progress=True)
    else:
        dataset = Dataset(data=list(data), transform=transform)
    return SkipBadImages(dataset) if skip_bad_images else dataset


def source_file_hash(item: dict) -> bytes:
    """MONAI's cache key of ``item`` (a dict of image paths), made to change when any of those files changes: each
    path that names a file adds its size and modification time (nanoseconds)."""
    stamps = {}
    for key, value in item.items():
        if isinstance(value, (str, os.PathLike)):
            try:
                info = os.stat(value)
            except OSError:  # not a file (or gone): the loader reports it
                continue
            stamps[key] = (info.st_size, info.st_mtime_ns)
    return pickle_hashing({"entry": item, "source": stamps})


class ImageCacheDataset(PersistentDataset):
    """MONAI's ``PersistentDataset`` that stores only the images (``cache_keys``) on disk, keyed by their file.

    ``PersistentDataset`` pickles the whole entry as it is after the deterministic transforms: report text and
    identifiers would sit in plain text in the cache folder. Here the deterministic transforms see the cached keys
    alone (they must only read those), and the rest of the entry joins the cached image before the random ones.

    MONAI keys a cache file by the entry alone, so an image replaced at the same path would be read from the cache
    for ever; here the key also holds each source file's size and modification time (:func:`source_file_hash`), and
    a changed file is decoded again.
    """

    def __init__(self, data: Sequence[dict], transform: Callable, cache_dir: str | os.PathLike, cache_keys=("image",)):
        super().__init__(data=data, transform=transform, cache_dir=cache_dir, hash_func=source_file_hash)
        self.cache_keys = tuple(cache_keys)

    def _transform(self, index: int):
        entry = self.data[index]
        cached = self._cachecheck({k: entry[k] for k in self.cache_keys if k in entry})
        rest = {k: v for k, v in entry.items() if k not in self.cache_keys}
        return self._post_transform({**rest, **cached})


def build_eval_dataset(
    data: Sequence[dict], transform: Callable, skip_bad_images: bool = False, name: str = "validation"
) -> Dataset:
    """A ``CacheDataset`` of an evaluation split; with ``skip_bad_images``, without the entries whose images fail to
    load (counted and printed, with the first reason), so that validation runs on what loads instead of stopping.

    Raises:
        InputError: with ``skip_bad_images``, when no image of the split loads.
    """
    if not skip_bad_images:
        return CacheDataset(data=list(data), transform=transform, progress=False)
    dataset = SkippingCacheDataset(data=list(data), transform=transform, progress=False)
    failed = [i for i, item in enumerate(dataset._cache) if isinstance(item, _FailedItem)]
    if not failed:
        return dataset
    first = dataset._cache[failed[0]].error
    message = f"Skipping {len(failed)} of {len(dataset)} {name} images that failed to load (first: {first})"
    logger.warning(message)
    print(message, flush=True)
    skipped = set(failed)
    kept = [i for i in range(len(dataset)) if i not in skipped]
    if not kept:
        raise InputError(f"none of the {len(dataset)} {name} images loads; the first: {first}")
    return Subset(dataset, kept)


def _image_error(err: BaseException) -> BaseException | None:
    """The :class:`CXRImageError` behind ``err`` (MONAI wraps transform errors in ``RuntimeError``), if any."""
    from ..transforms.io import CXRImageError

    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, CXRImageError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


class _FailedItem:
    """What :class:`SkippingCacheDataset` caches for an item whose image failed to load: the error, raised on use."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class SkippingCacheDataset(CacheDataset):
    """``CacheDataset`` that survives images failing to decode while the cache is filled: the failure is cached and
    raised again when the item is requested, where :class:`SkipBadImages` turns it into a skipped item.

    MONAI's ``CacheDataset`` decodes everything in its constructor, so one bad file would stop the run before
    training starts, whatever the skip setting says.
    """

    def _load_cache_item(self, idx: int):
        try:
            return super()._load_cache_item(idx)
        except Exception as err:
            cause = _image_error(err)
            if cause is None:
                raise
            return _FailedItem(cause)

    def _transform(self, index: int):
        cached = self._cache[index] if self._cache is not None and 0 <= index < len(self._cache) else None
        if isinstance(cached, _FailedItem):
            raise cached.error
        return super()._transform(index)


class SkipBadImages(TorchDataset):
    """Wrap a dataset so that an image which fails to decode yields ``None`` (dropped by :func:`skip_none_collate`)
    instead of ending the run; the failure is logged with the file and the reason. Other errors still raise."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except Exception as err:
            cause = _image_error(err)
            if cause is None:
                raise
            logger.warning("Skipping an image that failed to load: %s", cause)
            return None


def skip_none_collate(batch: list) -> dict:
    """MONAI's ``list_data_collate`` over the items that loaded; ``skipped_images`` counts the others."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return {"skipped_images": len(batch)}
    out = list_data_collate(kept)
    out["skipped_images"] = len(batch) - len(kept)
    return out


class _ItemList(list):
    """A batch kept as a list of items (detection: boxes vary in number), with the count of skipped images."""

    skipped_images = 0


def skip_none_list(batch: list) -> list:
    """``no_collation`` over the items that loaded (for list batches); ``.skipped_images`` counts the others."""
    kept = _ItemList(item for item in batch if item is not None)
    kept.skipped_images = len(batch) - len(kept)
    return kept


def collate_fn(skip_bad_images: bool = False, lists: bool = False) -> Callable[[list], dict | list]:
    """The training loader's ``collate_fn``, as the bundle configs choose it.

    Args:
        skip_bad_images: the batch may hold ``None`` for images that failed to decode (:class:`SkipBadImages`): drop
            them and count them (:func:`skip_none_collate` / :func:`skip_none_list`).
        lists: keep a batch as a list of items (detection: boxes vary in number; MONAI's ``no_collation``) instead of
            stacking it (MONAI's ``list_data_collate``).
    """
    if lists:
        from monai.data.utils import no_collation

        return skip_none_list if skip_bad_images else no_collation
    return skip_none_collate if skip_bad_images else list_data_collate
