"""Pixel operations of the phantom renderer: soft edges, smooth noise, blur, erosion, thin lines (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["F32", "blur", "curve_line", "erode", "smoothstep", "soft_inside", "value_noise"]


F32 = np.float32


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Cubic 0->1 ramp over [0, 1], used for soft organ edges."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def soft_inside(dist: np.ndarray, edge: float) -> np.ndarray:
    """Membership of a normalised distance field (<1 inside) with an edge of width ``edge``."""
    return smoothstep((1.0 - dist) / edge + 0.5).astype(F32)


def value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random coarse grid, smoothly interpolated to ``(h, w)``."""
    grid = rng.random((cells + 1, cells + 1), dtype=F32)
    ys = np.linspace(0, cells, h, endpoint=False, dtype=F32)
    xs = np.linspace(0, cells, w, endpoint=False, dtype=F32)
    iy, ix = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = smoothstep(ys - iy)[:, None], smoothstep(xs - ix)[None, :]
    iy, ix = iy[:, None], ix[None, :]
    top = grid[iy, ix] * (1 - fx) + grid[iy, ix + 1] * fx
    bottom = grid[iy + 1, ix] * (1 - fx) + grid[iy + 1, ix + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(F32)


def blur(img: np.ndarray, passes: int = 1) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur (edge-replicated), ``passes`` times: the detector's softness."""
    for _ in range(passes):
        p = np.pad(img, 1, mode="edge")
        img = (p[:-2] + 2 * p[1:-1] + p[2:]) * F32(0.25)
        img = (img[:, :-2] + 2 * img[:, 1:-1] + img[:, 2:]) * F32(0.25)
    return img


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a (2r+1)-pixel square, via box sums of cumulative sums (O(pixels))."""
    if radius <= 0:
        return mask
    out = mask.astype(np.int32)
    k = 2 * radius + 1
    for axis in (0, 1):
        padded = np.pad(out, [(radius + 1, radius) if a == axis else (0, 0) for a in (0, 1)])
        c = np.cumsum(padded, axis=axis)
        window = np.take(c, range(k, c.shape[axis]), axis=axis) - np.take(c, range(0, c.shape[axis] - k), axis=axis)
        out = (window == k).astype(np.int32)
    return out.astype(bool)


def curve_line(u: np.ndarray, v: np.ndarray, xs: np.ndarray, v0: float, v1: float, half_width: float) -> np.ndarray:
    """Membership of a thin line ``x = xs[row]`` between rows ``v0`` and ``v1`` (normalised)."""
    rows = ((v >= v0) & (v <= v1)).astype(F32)
    return np.exp(-(((u - xs) / half_width) ** 2)).astype(F32) * rows
