"""Plots people would rather look at than read: ROC curves, singular-value spectra."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_roc_curves", "plot_spectra"]


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


def plot_spectra(
    spectra: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str = "Singular-value spectrum"
) -> Path:
    """One PNG overlaying singular-value spectra (log scale, largest first), one curve per ``{label: values}``.

    Used for the encoder feature vs. the projections of one run, and for the same feature across runs (e.g. with
    and without the orthogonality loss). Values that are zero up to float64 rounding (below 1e-12 of the curve's
    largest: the directions a rank-deficient sample lacks) are left off the log axis.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6, 4.5), dpi=120, layout="constrained")  # room for wide log-scale tick labels
    ax = fig.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for label, values in spectra.items():
        v = np.asarray(values, dtype=float)
        index = np.arange(1, len(v) + 1)
        keep = v > (v.max() * 1e-12 if v.size else 0)
        ax.plot(index[keep], v[keep], label=label, linewidth=1.2)
    ax.set_yscale("log")
    ax.set(xlabel="component (sorted)", ylabel="singular value (normalised)", title=title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
