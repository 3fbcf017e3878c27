"""Classification metrics of the downstream protocol: AUROC per label and their mean, accuracy for multi-class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import ROCAUCMetric, compute_roc_auc

__all__ = ["per_label_auroc", "classification_report", "MeanAUROCMetric"]


class MeanAUROCMetric(ROCAUCMetric):
    """MONAI's ``ROCAUCMetric`` averaged over the labels where AUROC is defined.

    MONAI's macro average becomes NaN as soon as one label has a single class in the evaluated split (common for rare
    findings in small validation sets), which would break model selection; such labels are left out of the mean.
    """

    def __init__(self) -> None:
        super().__init__(average="none")

    def aggregate(self) -> float:  # type: ignore[override]
        """Mean of the defined per-label AUROCs (NaN only if none is defined)."""
        y_pred, y = self.get_buffer()
        if y_pred.ndim == 1:
            y_pred, y = y_pred[:, None], y[:, None]
        values = [a for a in per_label_auroc(y_pred, y) if not np.isnan(a)]
        return float(np.mean(values)) if values else float("nan")


def per_label_auroc(probs: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """AUROC of each column of ``probs`` ``[N, C]`` against binary ``labels`` ``[N, C]`` (NaN where a label has one class)."""
    out = []
    for c in range(probs.shape[1]):
        y = labels[:, c]
        if y.min() == y.max():  # AUROC is undefined without both classes
            out.append(float("nan"))
        else:
            out.append(float(compute_roc_auc(probs[:, c], y)))
    return out


def classification_report(
    probs: torch.Tensor, labels: torch.Tensor, names: Sequence[str], problem: str = "multi-label"
) -> dict[str, object]:
    """Per-label AUROC, their mean (over labels where it is defined) and, for multi-class, accuracy.

    Args:
        probs: ``[N, C]`` probabilities (sigmoid for multi-label, softmax for multi-class).
        labels: ``[N, C]`` binary targets (one-hot for multi-class).
        names: the ``C`` label names.
        problem: ``"multi-label"`` or ``"multi-class"``.
    """
    probs, labels = torch.as_tensor(probs).float().cpu(), torch.as_tensor(labels).float().cpu()
    aucs = per_label_auroc(probs, labels)
    defined = [a for a in aucs if not np.isnan(a)]
    report: dict[str, object] = {
        "auroc": dict(zip(names, aucs)),
        "mean_auroc": float(np.mean(defined)) if defined else float("nan"),
        "num_images": int(probs.shape[0]),
        "positives": dict(zip(names, labels.sum(0).int().tolist())),
    }
    if problem == "multi-class":
        report["accuracy"] = float((probs.argmax(1) == labels.argmax(1)).float().mean())
    return report
