"""Detection mAP of the downstream protocol (SPEC §2): AP averaged over the IoU thresholds 0.40, 0.45, ..., 0.75.

The protocol's code (MGCA) computed it with ``torchmetrics``' ``MeanAveragePrecision(iou_thresholds=[0.4, ...,
0.75])``, i.e. COCO-style AP: detections of all images ranked by score, greedily matched to the still unmatched true
box of highest IoU (≥ the threshold), precision made monotone, then read at the 101 recall points 0, 0.01, ..., 1
and averaged (precision 0 beyond the highest recall reached), at most 100 detections per image. MONAI's
``monai.apps.detection.metrics`` implements exactly that and is dimension-agnostic (it only needs an IoU function,
and ``monai.data.box_utils.box_iou`` takes 2D ``[x1, y1, x2, y2]`` boxes), so it is used as is; this module adds what
it lacks: the input format of our evaluator, several images per update, and an undefined result (no true box at
all) reported as NaN instead of MONAI's ``-1`` averaged in.

Only the detections the model outputs are scored: with the protocol's confidence threshold of 0.5 applied by the
detector, lower-scored boxes never reach the metric (as in MGCA). One difference from MGCA's code, on purpose: it
skipped images without a true box, so false positives on negative images cost nothing; here every image counts
(``positive_images_only=True`` reproduces MGCA).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.apps.detection.metrics.coco import COCOMetric
from monai.apps.detection.metrics.matching import matching_batch
from monai.data.box_utils import box_iou
from monai.metrics import Metric

logger = logging.getLogger(__name__)

__all__ = ["IOU_RANGE", "iou_thresholds", "detection_report", "detection_output_transform", "DetectionMAPMetric"]

#: ``(first, last, step)`` of the protocol's IoU thresholds.
IOU_RANGE: tuple[float, float, float] = (0.40, 0.75, 0.05)


def iou_thresholds(iou_range: Sequence[float] = IOU_RANGE) -> np.ndarray:
    """The thresholds ``first, first + step, ..., last``, computed exactly as MONAI's ``COCOMetric`` does (it matches
    thresholds by float equality)."""
    first, last, step = (float(v) for v in iou_range)
    return np.linspace(first, last, int(np.round((last - first) / step)) + 1, endpoint=True)


def _numpy(x: Any, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy() if dtype is float else x.detach().cpu().numpy()
    return np.asarray(x if x is not None else [], dtype=np.float64 if dtype is float else np.int64).reshape(shape)


def _on_cpu(item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a prediction/target dict with its tensors detached and on the CPU (they are kept until aggregation)."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in item.items()}


def detection_report(
    preds: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    iou_range: Sequence[float] = IOU_RANGE,
    max_detections: int = 100,
    positive_images_only: bool = False,
) -> dict[str, Any]:
    """mAP over the IoU thresholds and AP at each threshold, over a set of images.

    Args:
        preds: per image ``{"boxes": [D, 4], "scores": [D], "labels": [D]}`` (``[x1, y1, x2, y2]`` in pixels).
        targets: per image ``{"boxes": [G, 4], "labels": [G]}`` in the same coordinates.
        iou_range: ``(first, last, step)`` of the IoU thresholds (default 0.40:0.05:0.75).
        max_detections: the highest-scored detections per image that are scored (COCO's 100).
        positive_images_only: score only images with at least one true box (MGCA's code did).

    Returns:
        ``{"mAP", "ap_per_iou": {"0.40": AP, ...}, "iou_thresholds", "images", "true_boxes", "predicted_boxes"}``;
        APs are NaN when there is no true box at all (AP is undefined).
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions but {len(targets)} targets")
    pairs = [(p, t) for p, t in zip(preds, targets) if not positive_images_only or _numpy(t["boxes"], (-1, 4), float).size]
    pred_boxes = [_numpy(p["boxes"], (-1, 4), float) for p, _ in pairs]
    pred_scores = [_numpy(p["scores"], (-1,), float) for p, _ in pairs]
    pred_labels = [_numpy(p["labels"], (-1,), int) for p, _ in pairs]
    true_boxes = [_numpy(t["boxes"], (-1, 4), float) for _, t in pairs]
    true_labels = [_numpy(t["labels"], (-1,), int) for _, t in pairs]
    thresholds = iou_thresholds(iou_range)
    num_true = int(sum(len(b) for b in true_boxes))
    report: dict[str, Any] = {
        "mAP": float("nan"),
        "ap_per_iou": {f"{t:.2f}": float("nan") for t in thresholds},
        "iou_thresholds": [round(float(t), 2) for t in thresholds],
        "images": len(pairs),
        "true_boxes": num_true,
        "predicted_boxes": int(sum(len(b) for b in pred_boxes)),
    }
    if num_true == 0:
        logger.warning("No true box in the evaluated images: AP is undefined (NaN)")
        return report
    # COCO averages over the classes that have a true box; MONAI's COCOMetric would average a -1 in for the others.
    # So classes are renumbered over those with a true box, and detections of any other class (which COCO ignores)
    # are dropped.
    present = sorted({int(c) for labels in true_labels for c in labels.tolist()})
    index = {c: i for i, c in enumerate(present)}
    keep = [np.isin(labels, present) for labels in pred_labels]
    renumber = lambda labels: np.asarray([index[int(c)] for c in labels.tolist()], dtype=np.int64)  # noqa: E731
    coco = COCOMetric(
        classes=[str(c) for c in present],
        iou_list=thresholds,
        iou_range=tuple(iou_range),
        max_detection=(max_detections,),
        per_class=False,
        verbose=False,
    )
    matches = matching_batch(
        iou_fn=box_iou,
        iou_thresholds=coco.iou_thresholds,
        pred_boxes=[b[k] for b, k in zip(pred_boxes, keep)],
        pred_classes=[renumber(c[k]) for c, k in zip(pred_labels, keep)],
        pred_scores=[s[k] for s, k in zip(pred_scores, keep)],
        gt_boxes=true_boxes,
        gt_classes=[renumber(c) for c in true_labels],
        max_detections=max_detections,
    )
    values, _ = coco(matches)
    suffix = f"MaxDet_{max_detections}"
    report["ap_per_iou"] = {f"{t:.2f}": float(values[f"AP_IoU_{t:.2f}_{suffix}"]) for t in thresholds}
    report["mAP"] = float(values[f"mAP_IoU_{iou_range[0]:.2f}_{iou_range[1]:.2f}_{iou_range[2]:.2f}_{suffix}"])
    return report


def detection_output_transform(
    output: Sequence[Mapping[str, Any]],
    pred_prefix: str = "pred_",
    box_key: str = "boxes",
    label_key: str = "labels",
    score_key: str = "scores",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(preds, targets)`` from a detection evaluator's per-image outputs (``pred_boxes``, ``pred_scores``,
    ``pred_labels``, ``boxes``, ``labels``), the form :class:`DetectionMAPMetric` takes: the ``output_transform`` of
    MONAI's ``IgniteMetricHandler``."""
    rows = output if isinstance(output, (list, tuple)) else [output]
    preds = [
        {"boxes": r[pred_prefix + box_key], "scores": r[pred_prefix + score_key], "labels": r[pred_prefix + label_key]}
        for r in rows
    ]
    targets = [{"boxes": r[box_key], "labels": r[label_key]} for r in rows]
    return preds, targets


class DetectionMAPMetric(Metric):
    """Collects predictions and targets over an evaluation; ``aggregate()`` is the mAP of :func:`detection_report`.

    Use it through ``monai.handlers.IgniteMetricHandler(metric_fn=DetectionMAPMetric(),
    output_transform=mflag_monai.metrics.detection_output_transform, save_details=False)``. ``report`` holds the whole
    report (AP per threshold, counts) of the last ``aggregate()``. Not gathered across DDP ranks.

    Args:
        iou_range: ``(first, last, step)`` of the IoU thresholds.
        max_detections: detections per image scored.
        positive_images_only: score only images with a true box (MGCA's code).
    """

    def __init__(
        self, iou_range: Sequence[float] = IOU_RANGE, max_detections: int = 100, positive_images_only: bool = False
    ) -> None:
        super().__init__()
        self.iou_range = tuple(iou_range)
        self.max_detections = max_detections
        self.positive_images_only = positive_images_only
        self.preds: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.report: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget the collected images."""
        self.preds, self.targets = [], []

    def __call__(  # type: ignore[override]
        self, y_pred: Sequence[Mapping[str, Any]], y: Sequence[Mapping[str, Any]]
    ) -> None:
        """Add a batch: per-image prediction dicts and target dicts (see :func:`detection_report`)."""
        self.preds.extend(_on_cpu(p) for p in y_pred)
        self.targets.extend(_on_cpu(t) for t in y)

    def aggregate(self) -> float:
        """mAP over the collected images (NaN before any image, or without any true box)."""
        if not self.preds:
            return math.nan
        self.report = detection_report(
            self.preds, self.targets, self.iou_range, self.max_detections, self.positive_images_only
        )
        return float(self.report["mAP"])

    def get_buffer(self) -> dict[str, Any]:
        """The last report (what ``IgniteMetricHandler(save_details=True)`` stores as the metric's details)."""
        return self.report
