"""PNG sheets for looking at segmentation and detection results (matplotlib, Agg, no display needed).

Figures are built with ``matplotlib.figure.Figure`` directly rather than ``pyplot``: no global backend switch, no
figure registry to leak, safe from worker threads and headless machines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save_overlay_sheet", "save_box_overlay"]

_TRUTH_RGB = (0.1, 0.9, 0.2)  # green
_PRED_RGB = (1.0, 0.15, 0.1)  # red


def _to_2d(x: Any) -> np.ndarray:
    """A ``[H, W]`` float array from a tensor/array shaped ``[H, W]``, ``[C, H, W]`` (channel 0) or ``[1, 1, H, W]``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x, dtype=np.float32)
    while x.ndim > 2:
        x = x[0]  # channel 0: an image repeated to 3 channels for ResNet shows the same content
    if x.ndim != 2:
        raise ValueError(f"expected a 2D image (optionally channel-first), got shape {x.shape}")
    return x


def _as_list(x: Any) -> list:
    """Split a batch (tensor/array ``[B, ...]`` with at least 3 dims) or a sequence into a list of items."""
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x)
    return [x] if x.ndim == 2 else list(x)


def _tint(mask: np.ndarray, rgb: tuple[float, float, float], alpha: float = 0.4) -> np.ndarray:
    """An RGBA layer colouring ``mask`` (transparent elsewhere)."""
    layer = np.zeros((*mask.shape, 4), dtype=np.float32)
    layer[mask] = (*rgb, alpha)
    return layer


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice with the protocol's empty-truth rule (docs/method.md#segmentation): both empty → 1."""
    total = int(pred.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * float((pred & truth).sum()) / total


def _show(ax: Any, image: np.ndarray, extent: tuple[float, float, float, float] | None = None) -> None:
    # Per-image auto contrast: works for [0, 1] and [-1, 1] inputs alike.
    ax.imshow(image, cmap="gray", interpolation="nearest", extent=extent)
    ax.set_xticks([])
    ax.set_yticks([])


def _outline(ax: Any, mask: np.ndarray, rgb: tuple[float, float, float]) -> None:
    if mask.any() and not mask.all():  # contour() warns on a constant field
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[rgb], linewidths=1.0)


def save_overlay_sheet(
    images: Any,
    truths: Any,
    preds: Any,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    max_items: int = 8,
    threshold: float = 0.5,
) -> Path:
    """Write one PNG with a row per image: the image; the ground truth (green fill and outline); the prediction
    (red fill, with the ground-truth outline for comparison) titled with its per-image Dice.

    Args:
        images: a batch ``[B, C, H, W]`` / ``[B, H, W]`` or a list of ``[C, H, W]`` / ``[H, W]`` images (channel 0 is
            shown, with per-image contrast).
        truths: the ground-truth masks, same layout (values ``> 0.5`` are foreground).
        preds: predicted probabilities or masks, same layout (foreground ``> threshold``).
        path: the PNG written (folders are created).
        titles: one title per row (e.g. the image id).
        max_items: at most this many rows (the first ones).
        threshold: binarisation threshold of ``preds``.

    Returns:
        ``path`` as a ``Path``.
    """
    from matplotlib.figure import Figure

    images_, truths_, preds_ = _as_list(images), _as_list(truths), _as_list(preds)
    if not (len(images_) == len(truths_) == len(preds_)):
        raise ValueError(f"got {len(images_)} images, {len(truths_)} truths and {len(preds_)} predictions")
    count = min(len(images_), max_items)
    if count == 0:
        raise ValueError("nothing to draw: no images")

    fig = Figure(figsize=(9, 3 * count), dpi=100)
    axes = fig.subplots(count, 3, squeeze=False)
    for row in range(count):
        image = _to_2d(images_[row])
        truth = _to_2d(truths_[row]) > 0.5
        pred = _to_2d(preds_[row]) > threshold
        if not (image.shape == truth.shape == pred.shape):
            raise ValueError(f"row {row}: image {image.shape}, truth {truth.shape} and prediction {pred.shape} differ")
        name = titles[row] if titles is not None and row < len(titles) else f"#{row}"
        ax_image, ax_truth, ax_pred = axes[row]
        _show(ax_image, image)
        ax_image.set_title(str(name), fontsize=9)
        _show(ax_truth, image)
        ax_truth.imshow(_tint(truth, _TRUTH_RGB))
        _outline(ax_truth, truth, _TRUTH_RGB)
        ax_truth.set_title(f"truth ({int(truth.sum())} px)", fontsize=9)
        _show(ax_pred, image)
        ax_pred.imshow(_tint(pred, _PRED_RGB))
        _outline(ax_pred, truth, _TRUTH_RGB)
        ax_pred.set_title(f"prediction (Dice {_dice(pred, truth):.3f})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def save_box_overlay(
    image: Any,
    true_boxes: Any,
    pred_boxes: Any,
    pred_scores: Any,
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Write one PNG of ``image`` with the true boxes in green and the predicted boxes in red, labelled with scores.

    Args:
        image: ``[H, W]`` or channel-first ``[C, H, W]`` (channel 0 shown).
        true_boxes: ``[N, 4]`` boxes ``x1, y1, x2, y2`` in pixels (may be empty or ``None``).
        pred_boxes: ``[M, 4]`` boxes in the same convention (may be empty or ``None``).
        pred_scores: ``[M]`` confidences written beside the predicted boxes (``None``: no labels).
        path: the PNG written (folders are created).
        title: optional figure title.

    Returns:
        ``path`` as a ``Path``.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    def boxes_of(x: Any) -> np.ndarray:
        if x is None:
            return np.zeros((0, 4), dtype=np.float32)
        if hasattr(x, "detach"):
            x = x.detach().cpu().float().numpy()
        return np.asarray(x, dtype=np.float32).reshape(-1, 4)

    image_ = _to_2d(image)
    truth, pred = boxes_of(true_boxes), boxes_of(pred_boxes)
    scores = None
    if pred_scores is not None:
        scores = np.asarray(pred_scores.detach().cpu() if hasattr(pred_scores, "detach") else pred_scores).reshape(-1)
        if len(scores) != len(pred):
            raise ValueError(f"{len(pred)} predicted boxes but {len(scores)} scores")

    height, width = image_.shape
    fig = Figure(figsize=(6, 6 * height / width), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    # Pixel (r, c) covers [c, c+1) x [r, r+1): box corners are continuous pixel coordinates (x2 = x + width).
    _show(ax, image_, extent=(0, width, height, 0))
    for boxes, rgb in ((truth, _TRUTH_RGB), (pred, _PRED_RGB)):
        for x1, y1, x2, y2 in boxes.tolist():
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=rgb, linewidth=1.5))
    if scores is not None:
        for (x1, y1, _, _), score in zip(pred.tolist(), scores.tolist()):
            ax.text(x1, y1, f"{score:.2f}", color="white", fontsize=8, va="bottom",
                    bbox={"facecolor": _PRED_RGB, "alpha": 0.7, "pad": 1, "linewidth": 0})  # fmt: skip
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # boxes outside the image must not rescale the view; rows grow downwards
    ax.set_title(title or f"truth: {len(truth)} (green)   predicted: {len(pred)} (red)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
