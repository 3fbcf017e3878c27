"""Seeded splits and label-fraction draws, plus the mask-file helpers the segmentation preparers share.

Everything random here draws from ``numpy.random.default_rng(seed)`` over items taken in a fixed order, so results
depend only on the inputs and the seed: never on Python's hash randomisation (no ``set`` iteration, no ``hash()``).
Selected items always come back in their input order.

Fraction draws are *nested*: with the same seed and the same items, the items kept at 1% are among those kept at
10%, which are among those kept at 100% (each stratum is permuted once and a prefix is taken).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "SPLIT_NAMES",
    "dicom_size",
    "grouped_fraction",
    "resolve_masks_dir",
    "seeded_split",
    "seeded_subset",
    "stratified_fraction",
    "write_mask_png",
]

T = TypeVar("T")
#: The MONAI datalist keys of the three splits, in the order of ``fractions``.
SPLIT_NAMES: tuple[str, str, str] = ("training", "validation", "test")


def _key_fn(key: str | Callable[[Any], Hashable] | None) -> Callable[[Any], Hashable] | None:
    """Turn a dict-entry name into a getter; pass functions (and ``None``) through."""
    if key is None or callable(key):
        return key
    return lambda item: item[key]


def _order(value: Hashable) -> tuple[str, str]:
    """A total order over arbitrary keys (ints, strings, tuples, None) that does not depend on hashing."""
    return (type(value).__name__, repr(value))


def _round_half_up(x: float) -> int:
    """Round half up: Python's ``round`` rounds half to even, which would make 2.5 and 3.5 behave differently."""
    return math.floor(x + 0.5)


def _strata(indices: Sequence[int], labels: Sequence[Hashable] | None) -> list[list[int]]:
    """Group ``indices`` by their label, strata in a hash-independent order, indices in input order."""
    if labels is None:
        return [list(indices)]
    groups: dict[Hashable, list[int]] = {}
    for i in indices:
        groups.setdefault(labels[i], []).append(i)
    return [groups[k] for k in sorted(groups, key=_order)]


def seeded_split(
    items: Sequence[T],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 42,
    group_key: str | Callable[[Any], Hashable] | None = None,
    stratify_key: str | Callable[[Any], Hashable] | None = None,
) -> dict[str, list[T]]:
    """Split ``items`` at random into ``training`` / ``validation`` / ``test``, reproducibly.

    Args:
        items: the items (typically datalist entries, i.e. dicts).
        fractions: shares of the three splits; they are normalised to sum to 1.
        seed: seed of the draw; the same seed and items give the same split.
        group_key: items sharing this key (e.g. a patient id) always land in the same split. A dict-entry name or a
            function of the item; ``None`` treats every item as its own group.
        stratify_key: the split is drawn within each stratum of this key, so that every split keeps the strata's
            proportions (up to rounding). With ``group_key``, a group's stratum is its most common one (ties: the
            first in a fixed order).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``, each in the input order. Within a stratum of
        ``n`` groups, training gets ``round(n * f_train)`` groups and validation
        ``round(n * (f_train + f_val)) - round(n * f_train)``, rounding half up; test gets the rest.

    Raises:
        ValueError: when ``fractions`` does not hold three non-negative numbers with a positive sum.
    """
    if len(fractions) != len(SPLIT_NAMES) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative shares with a positive sum, got {tuple(fractions)}")
    total = float(sum(fractions))
    cumulative = np.cumsum([f / total for f in fractions])
    group_of, stratum_of = _key_fn(group_key), _key_fn(stratify_key)

    # Groups in first-seen order; each remembers its members (input indices).
    members: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        members.setdefault(group_of(item) if group_of else i, []).append(i)
    groups = list(members.values())
    labels = None
    if stratum_of is not None:
        labels = []
        for idx in groups:
            counts = Counter(stratum_of(items[i]) for i in idx)
            labels.append(min(counts, key=lambda k: (-counts[k], _order(k))))

    rng = np.random.default_rng(seed)
    assigned: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for stratum in _strata(range(len(groups)), labels):
        order = [stratum[j] for j in rng.permutation(len(stratum))]
        bounds = [0] + [_round_half_up(len(order) * c) for c in cumulative[:-1]] + [len(order)]
        for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:]):
            assigned[name].extend(i for g in order[lo:hi] for i in groups[g])
    return {name: [items[i] for i in sorted(idx)] for name, idx in assigned.items()}


def stratified_fraction(
    items: Sequence[T],
    fraction: float,
    seed: int = 42,
    stratify_key: str | Callable[[Any], Hashable] | None = None,
) -> list[T]:
    """Keep ``fraction`` of ``items``, drawn at random within each stratum so that the strata keep their proportions.

    Args:
        items: the items (e.g. the training split).
        fraction: share kept, in ``(0, 1]``; ``1.0`` returns every item.
        seed: seed of the draw; draws are nested across fractions for the same seed (see the module docstring).
        stratify_key: dict-entry name or function giving the stratum; ``None``: one stratum.

    Returns:
        The kept items in their input order: ``max(1, round(n * fraction))`` of each non-empty stratum of ``n``.

    Raises:
        ValueError: when ``fraction`` is not in ``(0, 1]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(items)
    stratum_of = _key_fn(stratify_key)
    labels = [stratum_of(item) for item in items] if stratum_of else None
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for stratum in _strata(range(len(items)), labels):
        count = max(1, _round_half_up(len(stratum) * fraction))
        kept.extend(stratum[j] for j in rng.permutation(len(stratum))[:count])
    return [items[i] for i in sorted(kept)]


def grouped_fraction(
    items: Sequence[T], fraction: float, seed: int = 42, group_key: str | Callable[[Any], Hashable] | None = None
) -> list[T]:
    """Keep ``fraction`` of the *groups* of ``items`` (e.g. patients), every item of a kept group, in input order.

    The groups are drawn with :func:`stratified_fraction` over the groups in first-seen order, so draws are nested
    across fractions for the same seed, as there.
    """
    group_of = _key_fn(group_key)
    if group_of is None:
        return stratified_fraction(items, fraction, seed=seed)
    groups = list(dict.fromkeys(group_of(item) for item in items))
    kept = set(stratified_fraction(groups, fraction, seed=seed))
    return [item for item in items if group_of(item) in kept]


def seeded_subset(items: Sequence[T], count: int, seed: int = 42) -> list[T]:
    """``count`` items drawn at random without replacement (all of them if there are fewer), in input order."""
    if count >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).permutation(len(items))[: max(count, 0)]
    return [items[i] for i in sorted(chosen.tolist())]


# ----------------------------------------------------------------------------- mask files of the preparers


def resolve_masks_dir(out: str | os.PathLike | None, masks_dir: str | os.PathLike | None) -> Path:
    """The absolute folder mask PNGs go to: ``masks_dir``, else ``<out stem>_masks`` beside the datalist ``out``.

    Raises:
        ValueError: when both are ``None`` (a preparer writing masks must know where).
    """
    if masks_dir is not None:
        return Path(masks_dir).expanduser().resolve()
    if out is None:
        raise ValueError("masks are written as files: pass out= (the datalist path) or masks_dir=")
    out = Path(out).expanduser().resolve()
    return out.parent / f"{out.stem}_masks"


def dicom_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(rows, columns)`` of a DICOM image, from its header only (the pixel data is not read)."""
    from ...utils.dicom import read_dicom_header

    ds = read_dicom_header(path)
    return int(ds.Rows), int(ds.Columns)


def write_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a binary ``(H, W)`` mask as an 8-bit grayscale PNG holding 0 / 255, atomically.

    The file appears complete or not at all (temporary sibling, then rename), so a preparer that reuses existing
    masks never picks up a half-written one after an interruption.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.where(np.asarray(mask) != 0, 255, 0).astype(np.uint8))  # 2D uint8 → mode "L"
    from ...utils.io import atomic_write  # lazy: this module loads with numpy alone

    atomic_write(path, lambda f: image.save(f, format="PNG"))
    return path
