"""Plots people would rather look at than read: ROC curves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_roc_curves"]


def _roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    tps = np.concatenate([[0], np.cumsum(y)])
    fps = np.concatenate([[0], np.cumsum(1 - y)])
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1)


def save_roc_curves(
    probs: np.ndarray, labels: np.ndarray, names: Sequence[str], aucs: Sequence[float], path: str | os.PathLike
) -> Path:
    """One PNG with the ROC curve of every label (AUROC in the legend)."""
    from matplotlib.figure import Figure

    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    fig = Figure(figsize=(5.5, 5), dpi=120)
    ax = fig.add_subplot()
    for c, name in enumerate(names):
        if np.isnan(aucs[c]):
            continue
        fpr, tpr = _roc(probs[:, c], labels[:, c])
        ax.plot(fpr, tpr, label=f"{name} ({aucs[c]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
