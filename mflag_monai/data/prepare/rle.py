"""Run-length encoding of the SIIM-ACR Pneumothorax challenge (``train-rle.csv``).

The format (docs/method.md#siim-acr-pneumothorax): ``EncodedPixels`` is a whitespace-separated list of
``offset length`` pairs over the image flattened **column-major** (down the first
column, then the second, ...). Each offset is relative to the *end of the previous
run* (the first one to pixel 0), not absolute. ``-1`` means "no pneumothorax".
One image with several regions has several rows; their masks are unioned.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["EMPTY_RLE", "rle_decode", "rle_decode_union", "rle_encode"]

#: The value SIIM writes for an image without pneumothorax.
EMPTY_RLE = "-1"


def _parse_pairs(rle: str) -> np.ndarray:
    """Return the ``(n, 2)`` int64 array of (relative offset, length) pairs of ``rle``."""
    text = rle.strip()
    if text in ("", EMPTY_RLE):
        return np.zeros((0, 2), dtype=np.int64)
    values = np.array(text.split(), dtype=np.int64)
    if values.size % 2:
        raise ValueError(f"RLE has an odd number of values ({values.size})")
    return values.reshape(-1, 2)


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode one SIIM-ACR ``EncodedPixels`` string into a binary mask.

    Args:
        rle: the encoded string, ``"-1"`` (surrounding whitespace allowed) for an empty mask.
        height: number of image rows.
        width: number of image columns.

    Returns:
        ``uint8`` array of shape ``(height, width)`` holding 0/1.

    Raises:
        ValueError: on an odd number of values, negative values or a run past the image end.
    """
    pairs = _parse_pairs(rle)
    flat = np.zeros(height * width, dtype=np.uint8)
    if len(pairs):
        if (pairs < 0).any():
            raise ValueError("RLE offsets and lengths must be non-negative")
        # Absolute starts: each offset counts from the end of the previous run.
        ends_before = np.concatenate(([0], np.cumsum(pairs[:, 0] + pairs[:, 1])[:-1]))
        starts = ends_before + pairs[:, 0]
        stops = starts + pairs[:, 1]
        if stops[-1] > flat.size:
            raise ValueError(f"RLE run ends at {stops[-1]}, past the {height}x{width} image")
        for start, stop in zip(starts.tolist(), stops.tolist()):
            flat[start:stop] = 1
    # Column-major flattening: the flat index is column * height + row.
    return np.ascontiguousarray(flat.reshape(width, height).T)


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2D binary mask in the SIIM-ACR format; the inverse of :func:`rle_decode`.

    Args:
        mask: ``(height, width)`` array; any non-zero value counts as foreground.

    Returns:
        ``"offset length offset length ..."`` with offsets relative to the end of the
        previous run, or ``"-1"`` for an empty mask.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D mask, got shape {mask.shape}")
    flat = (np.asarray(mask).T.reshape(-1) != 0).astype(np.int8)
    if not flat.any():
        return EMPTY_RLE
    # Run boundaries from the sign changes of the zero-padded sequence.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flat, [0]))))
    starts, stops = edges[0::2], edges[1::2]
    offsets = starts - np.concatenate(([0], stops[:-1]))
    pairs = np.stack([offsets, stops - starts], axis=1).reshape(-1)
    return " ".join(map(str, pairs.tolist()))


def rle_decode_union(rles: Iterable[str], height: int, width: int) -> np.ndarray:
    """Decode several ``EncodedPixels`` rows of one image and return the union mask.

    Args:
        rles: the strings of every row of the image (``"-1"`` rows contribute nothing).
        height: number of image rows.
        width: number of image columns.

    Returns:
        ``uint8`` array of shape ``(height, width)`` holding 0/1.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    for rle in rles:
        mask |= rle_decode(rle, height, width)
    return mask
