"""Classification metrics of the downstream protocol: AUROC per label and their mean, accuracy for multi-class.

Two protocols (:mod:`~mflag_monai.metrics.protocol`):

- ``"standard"`` (default): each label's AUROC as scikit-learn's ``roc_auc_score`` defines it (MONAI's
  ``compute_roc_auc``, exact in float64), undefined (NaN) for a label with one class in the evaluated split and left
  out of the mean.
- ``"mgca"`` (comparability mode): what MGCA's released ``ssl_finetuner.py`` reported, ``torchmetrics==0.8.2``'s
  ``AUROC(num_classes=C)`` on float32 probabilities: the ROC curve in float32 and its trapezoidal area; a label with
  one class gets a zero true- or false-positive rate curve, so its AUROC is **0**, and it is averaged in (float32
  mean over all labels). On small test splits with a rare finding this differs from the standard mean by a lot.

Accuracy (multi-class, top-1 of the probabilities) is the same under both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import ROCAUCMetric, compute_roc_auc

from .protocol import check_protocol

__all__ = ["MeanAUROCMetric", "classification_report", "mean_auroc", "per_label_auroc"]


def _tm082_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """One label's AUROC as torchmetrics 0.8.2 computed it (``_binary_clf_curve``, ``_roc_compute_single_class``,
    ``torch.trapz``), all in float32; 0 when the label has one class."""
    preds = scores.to(torch.float32)  # MGCA: torch.sigmoid(logits).float()
    target = labels.to(torch.long)  # MGCA: y.long()
    order = torch.argsort(preds, descending=True)
    preds, target = preds[order], target[order]
    distinct = torch.where(preds[1:] - preds[:-1])[0]
    threshold_idxs = F.pad(distinct, [0, 1], value=target.size(0) - 1)
    target = (target == 1).to(torch.long)
    tps = torch.cumsum(target * 1.0, dim=0)[threshold_idxs]
    fps = 1 + threshold_idxs - tps
    tps = torch.cat([torch.zeros(1, dtype=tps.dtype), tps])
    fps = torch.cat([torch.zeros(1, dtype=fps.dtype), fps])
    # 0.8.2 returns a zero rate curve (with a warning) where a class is missing: the area is then 0
    fpr = torch.zeros_like(fps) if fps[-1] <= 0 else fps / fps[-1]
    tpr = torch.zeros_like(tps) if tps[-1] <= 0 else tps / tps[-1]
    return float(torch.trapezoid(tpr, fpr))


def per_label_auroc(probs: torch.Tensor, labels: torch.Tensor, protocol: str = "standard") -> list[float]:
    """AUROC of each column of ``probs`` ``[N, C]`` against binary ``labels`` ``[N, C]``.

    Under ``"standard"`` a label with one class is NaN (AUROC is undefined); under ``"mgca"`` it is 0, and every
    value is computed in float32 as torchmetrics 0.8.2 did.
    """
    check_protocol(protocol)
    probs, labels = torch.as_tensor(probs), torch.as_tensor(labels)
    out = []
    for c in range(probs.shape[1]):
        y = labels[:, c]
        if protocol == "mgca":
            out.append(_tm082_auroc(probs[:, c], y))
        elif y.min() == y.max():  # AUROC is undefined without both classes
            out.append(float("nan"))
        else:
            out.append(float(compute_roc_auc(probs[:, c].to(torch.float64), y.to(torch.float64))))
    return out


def mean_auroc(aucs: Sequence[float], protocol: str = "standard") -> float:
    """The reported mean of per-label AUROCs: over the defined ones (``"standard"``; NaN if none is), or the float32
    mean of all of them (``"mgca"``: torchmetrics' ``torch.mean(torch.stack(...))``)."""
    check_protocol(protocol)
    if protocol == "mgca":
        return float(torch.mean(torch.tensor(list(aucs), dtype=torch.float32))) if len(aucs) else float("nan")
    defined = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(defined)) if defined else float("nan")


class MeanAUROCMetric(ROCAUCMetric):
    """MONAI's ``ROCAUCMetric`` averaged over the labels as :func:`mean_auroc` does.

    Under the default ``"standard"`` protocol, labels with one class in the evaluated split are left out of the mean:
    MONAI's macro average becomes NaN as soon as one label has a single class (common for rare findings in small
    validation sets), which would break model selection. ``protocol="mgca"`` scores them 0 and averages them in, as
    MGCA's code did.
    """

    def __init__(self, protocol: str = "standard") -> None:
        super().__init__(average="none")
        self.protocol = check_protocol(protocol)

    def aggregate(self) -> float:  # type: ignore[override]
        """Mean AUROC over the labels (NaN only if none is defined)."""
        y_pred, y = self.get_buffer()
        if y_pred.ndim == 1:
            y_pred, y = y_pred[:, None], y[:, None]
        return mean_auroc(per_label_auroc(y_pred, y, self.protocol), self.protocol)


def classification_report(
    probs: torch.Tensor,
    labels: torch.Tensor,
    names: Sequence[str],
    problem: str = "multi-label",
    protocol: str = "standard",
) -> dict[str, object]:
    """Per-label AUROC, their mean and, for multi-class, accuracy.

    Args:
        probs: ``[N, C]`` probabilities (sigmoid for multi-label, softmax for multi-class), used at their own
            precision (float64 stays float64: a cast to float32 would create ties).
        labels: ``[N, C]`` binary targets (one-hot for multi-class).
        names: the ``C`` label names.
        problem: ``"multi-label"`` or ``"multi-class"``.
        protocol: ``"standard"`` or ``"mgca"`` (MGCA's released evaluation, for comparison with papers).
    """
    check_protocol(protocol)
    probs, labels = torch.as_tensor(probs).detach().cpu(), torch.as_tensor(labels).detach().cpu()
    if not probs.is_floating_point():
        probs = probs.to(torch.float64)
    aucs = per_label_auroc(probs, labels, protocol)
    report: dict[str, object] = {
        "auroc": dict(zip(names, aucs)),
        "mean_auroc": mean_auroc(aucs, protocol),
        "protocol": protocol,
        "num_images": int(probs.shape[0]),
        "positives": dict(zip(names, (labels > 0.5).sum(0).tolist())),
    }
    if problem == "multi-class":
        report["accuracy"] = float((probs.argmax(1) == labels.argmax(1)).to(torch.float64).mean())
    return report
