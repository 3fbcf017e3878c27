"""The lateral radiograph: a plausible silhouette only (the lateral images that data preparation drops)."""

from __future__ import annotations

import numpy as np

from .ops import F32, blur, smoothstep, soft_inside

__all__ = ["render_lateral_xray"]


def render_lateral_xray(
    height: int, width: int | None = None, *, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Render a simple lateral chest radiograph (patient facing image left).

    Only a plausible silhouette: a body outline, one large lung field, the heart in front,
    the spine behind and the diaphragm. Used for the lateral images that data preparation
    drops.

    Args:
        height: image rows.
        width: image columns (default ``height``).
        rng: a ``np.random.Generator`` or a seed.

    Returns:
        ``(H, W)`` float32 in ``[0, 1]``, bright = dense.
    """
    width = height if width is None else width
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    h, w = height, width
    v = ((np.arange(h, dtype=F32) + 0.5) / h)[:, None]
    u = ((np.arange(w, dtype=F32) + 0.5) / w)[None, :]
    s = float(rng.uniform(0.9, 1.04))
    cx, cy = 0.5 + float(rng.uniform(-0.03, 0.03)), 0.55 + float(rng.uniform(-0.03, 0.03))
    body = soft_inside(((u - cx) / (0.36 * s)) ** 4 + ((v - cy) / 0.7) ** 4, 0.05)
    lung = soft_inside(((u - cx - 0.02) / (0.25 * s)) ** 2 + ((v - cy + 0.08) / (0.33 * s)) ** 2, 0.1)
    dia = cy + 0.2 * s - 0.06 * (1 - ((u - cx) / 0.3) ** 2)
    lung = lung * (v < dia)
    heart = soft_inside(((u - cx + 0.12 * s) / (0.16 * s)) ** 2 + ((v - cy - 0.06) / (0.13 * s)) ** 2, 0.15)
    heart = heart * lung
    spine = smoothstep((0.045 * s - np.abs(u - cx - 0.25 * s)) / 0.01 + 0.5)
    vertebrae = 0.04 * np.cos(2 * np.pi * v / (0.05 * s))
    img = 0.03 + 0.45 * body + 0.12 * body * (v > dia)
    img = img * (1 - lung * 0.6) + 0.3 * heart
    img = img + (0.12 + vertebrae) * spine * body
    img = blur(img.astype(F32)) + rng.normal(0, 0.012, size=(h, w)).astype(F32)
    return np.clip(img, 0, 1).astype(F32)
