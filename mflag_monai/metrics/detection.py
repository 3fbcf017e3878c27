"""Detection mAP of the downstream protocol (docs/method.md#detection): AP averaged over the IoU thresholds 0.40,
0.45, ..., 0.75.

Two protocols (:mod:`~mflag_monai.metrics.protocol`):

``"standard"`` (default): COCO AP computed by pycocotools' ``COCOeval`` itself, built in memory: area range "all"
(no box ignored for its area), at most ``max_detections`` (100) detections per image, the protocol's IoU thresholds as
``params.iouThrs``. Per image, the detections (highest scores first, ties kept in input order) are matched greedily to
the still unmatched true box of highest IoU, a match needing IoU ≥ the threshold; the detections of all images are then
ranked by score (a stable sort, so tied scores keep image order), precision is made monotone and read at the 101
recall points 0, 0.01, ..., 1 (0 beyond the highest recall reached); AP is the mean over the recall points and over
the classes that have a true box, mAP the mean over the thresholds too. The recall points are ``np.linspace(0, 1,
101)``, ten of which lie one ulp above their decimal (0.35, 0.41, 0.47, 0.57, 0.69, 0.70, 0.82, 0.83, 0.94, 0.95): a
recall of exactly 7/10 does not reach the point "0.70". Every image counts, so false positives on images without a
true box cost precision. IoU and accumulation are float64. MONAI's ``COCOMetric`` would not give these numbers: it
keeps the true-positive counts and recall in float32 (a recall of 1/25 becomes 0.0399999991, below the recall point
0.04, which then reads the next, lower precision), and MONAI's ``box_iou`` adds float32's epsilon to the union (an
IoU of exactly 0.45 comes out below 0.45 and is not matched).

``"mgca"`` (comparability mode): what MGCA's released ``ssl_detector.py`` computed. An image is scored only when it has
a true box **and** at least one detection left after the confidence threshold and NMS (MGCA skipped the others, so
neither the false positives on negative images nor the true boxes of images with no detection counted), and the AP is
``torchmetrics==0.8.2``'s ``MeanAveragePrecision``: torchvision's float32 IoU, a match needs IoU strictly above the
threshold (compared in float32), ties in IoU go to the first true box, scores are ranked with ``torch.sort`` (not
stable), counts and recall are float32, and the mean is a float32 mean. This module re-implements those steps with
the same tensor operations rather than depending on a 2022 release.

The confidence threshold (0.5) and NMS are the detector's: only the boxes the model outputs reach the metric.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import Metric

from .protocol import check_protocol

logger = logging.getLogger(__name__)

__all__ = [
    "IOU_RANGE",
    "RECALL_POINTS",
    "DetectionMAPMetric",
    "detection_output_transform",
    "detection_report",
    "iou_thresholds",
]

#: ``(first, last, step)`` of the protocol's IoU thresholds.
IOU_RANGE: tuple[float, float, float] = (0.40, 0.75, 0.05)
#: The recall points ``0, 0.01, ..., 1`` (pycocotools' ``recThrs``, float64).
RECALL_POINTS: np.ndarray = np.linspace(0.0, 1.0, 101, endpoint=True)
# torchmetrics 0.8.2's "all" area range: true boxes outside it are ignored, unmatched detections outside it too.
_TM_AREA_ALL: tuple[int, int] = (0, int(1e5**2))


def iou_thresholds(iou_range: Sequence[float] = IOU_RANGE) -> np.ndarray:
    """The thresholds ``first, first + step, ..., last`` as the doubles nearest to their decimal values.

    ``linspace`` can land one ulp beside a decimal threshold, and an IoU that equals the threshold (9/20 for 0.45)
    must still match, so each value is rounded to 10 decimals (MGCA's list ``[0.4, 0.45, ...]`` is the same values).
    """
    first, last, step = (float(v) for v in iou_range)
    values = np.linspace(first, last, int(np.round((last - first) / step)) + 1, endpoint=True)
    return np.asarray([round(float(v), 10) for v in values], dtype=np.float64)


def _numpy(x: Any, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A float64 or int64 array of ``shape`` (float32 inputs convert exactly)."""
    if isinstance(x, torch.Tensor):  # via float64/int64: numpy has no bfloat16
        x = x.detach().cpu().to(torch.float64 if x.is_floating_point() else torch.int64).numpy()
    return np.asarray(x if x is not None else [], dtype=np.float64 if dtype is float else np.int64).reshape(shape)


def _on_cpu(item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a prediction/target dict with its tensors detached and on the CPU (they are kept until aggregation)."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in item.items()}


def _coco_annotations(items: Sequence[Mapping[str, Any]], scored: bool) -> list[dict[str, Any]]:
    """COCO annotations of per-image box dicts (with their scores when ``scored``): ``[x, y, w, h]`` boxes, the image
    id the item's position, annotation ids from 1 (``COCOeval`` records a match as the matched id, and 0 would read
    as unmatched)."""
    anns: list[dict[str, Any]] = []
    for image_id, item in enumerate(items):
        boxes = _numpy(item["boxes"], (-1, 4), float).tolist()
        labels = _numpy(item["labels"], (-1,), int).tolist()
        scores = _numpy(item["scores"], (-1,), float).tolist() if scored else [None] * len(boxes)
        for (x1, y1, x2, y2), label, score in zip(boxes, labels, scores):
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": label, "iscrowd": 0}
            ann.update(bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))
            if scored:
                ann["score"] = score
            anns.append(ann)
    return anns


def _standard_ap(pairs: Sequence[tuple[Mapping, Mapping]], thresholds: np.ndarray, max_det: int) -> np.ndarray:
    """COCO precision table ``[T, 101, K]`` over the classes with a true box: pycocotools' ``COCOeval``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i} for i in range(len(pairs))]
    true_anns = _coco_annotations([t for _, t in pairs], scored=False)
    pred_anns = _coco_annotations([p for p, _ in pairs], scored=True)
    # COCO averages over the classes with a true box; detections of other classes never count
    categories = [{"id": c} for c in sorted({a["category_id"] for a in true_anns})]
    # pycocotools reports its progress with print() and has no switch to silence it
    with contextlib.redirect_stdout(io.StringIO()):
        truth, detections = COCO(), COCO()
        truth.dataset = {"images": images, "annotations": true_anns, "categories": categories}
        detections.dataset = {"images": images, "annotations": pred_anns, "categories": categories}
        truth.createIndex()
        detections.createIndex()
        evaluation = COCOeval(truth, detections, "bbox")
        evaluation.params.iouThrs = np.asarray(thresholds, dtype=np.float64)
        evaluation.params.maxDets = [int(max_det)]
        # "all" without bounds: a box is never ignored for its area (not even a degenerate one)
        evaluation.params.areaRng, evaluation.params.areaRngLbl = [[-np.inf, np.inf]], ["all"]
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation.eval["precision"][:, :, :, 0, 0]


def _tm082_box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _tm082_evaluate_image(
    det: torch.Tensor,
    scores: torch.Tensor,
    gt: torch.Tensor,
    thresholds: Sequence[float],
    max_det: int,
) -> dict[str, torch.Tensor] | None:
    """torchmetrics 0.8.2 ``_compute_iou`` + ``_evaluate_image`` for one image and class, area range "all"."""
    from torchvision.ops import box_iou

    if gt.numel() == 0 and det.numel() == 0:
        return None
    areas = _tm082_box_area(gt)
    ignore_area = (areas < _TM_AREA_ALL[0]) | (areas > _TM_AREA_ALL[1])
    gt_ignore, gtind = torch.sort(ignore_area.to(torch.uint8))
    gt_ignore = gt_ignore.to(torch.bool)
    scores_sorted, dtind = torch.sort(scores, descending=True)
    det = det[dtind][:max_det]
    # 0.8.2 computes the IoU with torchvision (float32) between the score-sorted detections and the unsorted true
    # boxes, then reorders its columns: the same numbers as the IoU with the reordered boxes
    ious = box_iou(det, gt)[:, gtind] if len(det) and len(gt) else torch.zeros(0)
    nb_thr, nb_det, nb_gt = len(thresholds), len(det), len(gt)
    gt_matches = torch.zeros((nb_thr, nb_gt), dtype=torch.bool)
    det_matches = torch.zeros((nb_thr, nb_det), dtype=torch.bool)
    det_ignore = torch.zeros((nb_thr, nb_det), dtype=torch.bool)
    if ious.numel() > 0:
        for i, thr in enumerate(thresholds):
            for d in range(nb_det):
                # 0.8.2's _find_best_gt_match: matched or ignored true boxes masked to 0, the first maximum wins,
                # and a match needs IoU > thr with thr a Python float compared to a float32 tensor (in float32)
                gt_ious = ious[d] * ~(gt_matches[i] | gt_ignore)
                m = int(gt_ious.argmax().item())
                if gt_ious[m] > thr:
                    det_ignore[i, d] = gt_ignore[m]
                    det_matches[i, d] = True
                    gt_matches[i, m] = True
    det_areas = _tm082_box_area(det)
    outside = ((det_areas < _TM_AREA_ALL[0]) | (det_areas > _TM_AREA_ALL[1])).reshape(1, nb_det)
    det_ignore = det_ignore | (~det_matches & outside.repeat_interleave(nb_thr, 0))
    return {"dtMatches": det_matches, "dtScores": scores_sorted, "gtIgnore": gt_ignore, "dtIgnore": det_ignore}


def _tm082_precision(evals: Sequence[Mapping[str, torch.Tensor]], nb_thr: int, max_det: int) -> torch.Tensor | None:
    """torchmetrics 0.8.2 ``__calculate_recall_precision_scores``: float32 precision ``[T, 101]`` of one class, or
    ``None`` when the class has no true box (0.8.2 leaves -1 there)."""
    rec_thresholds = torch.tensor(torch.linspace(0.0, 1.00, round(1.00 / 0.01) + 1).tolist())
    det_scores = torch.cat([e["dtScores"][:max_det] for e in evals])
    inds = torch.argsort(det_scores, descending=True)  # not a stable sort: 0.8.2's order of tied scores
    det_matches = torch.cat([e["dtMatches"][:, :max_det] for e in evals], dim=1)[:, inds]
    det_ignore = torch.cat([e["dtIgnore"][:, :max_det] for e in evals], dim=1)[:, inds]
    gt_ignore = torch.cat([e["gtIgnore"] for e in evals])
    npig = torch.count_nonzero(~gt_ignore)
    if npig == 0:
        return None
    tp_sum = torch.cumsum(det_matches & ~det_ignore, dim=1, dtype=torch.float)
    fp_sum = torch.cumsum(~det_matches & ~det_ignore, dim=1, dtype=torch.float)
    precision = torch.zeros((nb_thr, len(rec_thresholds)))
    for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
        nd = len(tp)
        rc = tp / npig  # float32 recall
        pr = tp / (fp + tp + torch.finfo(torch.float64).eps)
        prec = torch.zeros((len(rec_thresholds),))
        # 0.8.2 removes the zigzags by repeated float32 additions (not an exact running maximum)
        diff_zero = torch.zeros((1,))
        diff = torch.ones((1,))
        while not torch.all(diff == 0):
            diff = torch.clamp(torch.cat((pr[1:] - pr[:-1], diff_zero), 0), min=0)
            pr += diff
        idx = torch.searchsorted(rc, rec_thresholds, right=False)
        num_inds = idx.argmax() if idx.max() >= nd else len(rec_thresholds)
        idx = idx[:num_inds]
        prec[:num_inds] = pr[idx]
        precision[t] = prec
    return precision


def _mgca_ap(pairs: Sequence[tuple[Mapping, Mapping]], thresholds: Sequence[float], max_det: int) -> torch.Tensor:
    """torchmetrics 0.8.2 ``MeanAveragePrecision``'s precision table ``[T, 101, K]`` (float32, -1 for a class without
    true box) over the images MGCA's code gave it."""

    def tensor(x: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        x = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x if x is not None else []))
        return x.to(dtype).reshape(shape)

    det_boxes = [tensor(p["boxes"], torch.float32, (-1, 4)) for p, _ in pairs]  # MGCA's boxes and scores: float32
    det_scores = [tensor(p["scores"], torch.float32, (-1,)) for p, _ in pairs]
    det_labels = [tensor(p["labels"], torch.int64, (-1,)) for p, _ in pairs]
    gt_boxes = [tensor(t["boxes"], torch.float32, (-1, 4)) for _, t in pairs]
    gt_labels = [tensor(t["labels"], torch.int64, (-1,)) for _, t in pairs]
    classes = torch.cat(det_labels + gt_labels).unique().tolist() if pairs else []
    precision = -torch.ones((len(thresholds), len(RECALL_POINTS), len(classes)))
    for k, c in enumerate(classes):
        evals = []
        for db, ds, dl, gb, gl in zip(det_boxes, det_scores, det_labels, gt_boxes, gt_labels):
            # every image MGCA scored has a true box and a detection, so 0.8.2's special cases for images without
            # either never apply: the general branch, with this class's boxes
            e = _tm082_evaluate_image(db[dl == c], ds[dl == c], gb[gl == c], thresholds, max_det)
            if e is not None:
                evals.append(e)
        if evals:
            table = _tm082_precision(evals, len(thresholds), max_det)
            if table is not None:
                precision[:, :, k] = table
    return precision


def _mean_defined(values: np.ndarray | torch.Tensor) -> float:
    """Mean of the entries > -1 (the rule of pycocotools and torchmetrics for classes without a true box), NaN if
    there are none; a float32 tensor gets torchmetrics' float32 mean."""
    defined = values[values > -1]
    if isinstance(defined, torch.Tensor):
        return float(torch.mean(defined)) if defined.numel() else math.nan
    return float(np.mean(defined)) if defined.size else math.nan


def detection_report(
    preds: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    iou_range: Sequence[float] = IOU_RANGE,
    max_detections: int = 100,
    positive_images_only: bool = False,
    protocol: str = "standard",
) -> dict[str, Any]:
    """mAP over the IoU thresholds and AP at each threshold, over a set of images.

    Args:
        preds: per image ``{"boxes": [D, 4], "scores": [D], "labels": [D]}`` (``[x1, y1, x2, y2]`` in pixels).
        targets: per image ``{"boxes": [G, 4], "labels": [G]}`` in the same coordinates.
        iou_range: ``(first, last, step)`` of the IoU thresholds (default 0.40:0.05:0.75).
        max_detections: the highest-scored detections per image that are scored (COCO's and MGCA's 100).
        positive_images_only: score only images with at least one true box (standard protocol only; this is not
            MGCA's procedure, which also skipped images without detection: use ``protocol="mgca"``).
        protocol: ``"standard"`` (COCO AP, pycocotools' definition) or ``"mgca"`` (MGCA's released evaluation, a
            comparability mode); see the module docstring.

    Returns:
        ``{"mAP", "ap_per_iou": {"0.40": AP, ...}, "iou_thresholds", "protocol", "images" (scored), "images_skipped",
        "true_boxes", "predicted_boxes"}`` (counts over the scored images); APs are NaN when no scored image has a
        true box (AP is undefined).
    """
    check_protocol(protocol)
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions but {len(targets)} targets")
    if protocol == "mgca" and positive_images_only:
        raise ValueError(
            "positive_images_only belongs to the standard protocol; the mgca protocol has its own skipping"
        )

    def count(boxes: Any) -> int:
        return len(_numpy(boxes, (-1, 4), float))

    if protocol == "mgca":
        # MGCA's ssl_detector.py: `if out is None: continue` (no box after confidence threshold and NMS), then only
        # images with a true box are passed to the metric
        pairs = [(p, t) for p, t in zip(preds, targets) if count(p["boxes"]) and count(t["boxes"])]
    else:
        pairs = [(p, t) for p, t in zip(preds, targets) if not positive_images_only or count(t["boxes"])]
    thresholds = iou_thresholds(iou_range)
    num_true = sum(count(t["boxes"]) for _, t in pairs)
    report: dict[str, Any] = {
        "mAP": math.nan,
        "ap_per_iou": {f"{t:.2f}": math.nan for t in thresholds},
        "iou_thresholds": [round(float(t), 2) for t in thresholds],
        "protocol": protocol,
        "images": len(pairs),
        "images_skipped": len(preds) - len(pairs),
        "true_boxes": num_true,
        "predicted_boxes": sum(count(p["boxes"]) for p, _ in pairs),
    }
    if num_true == 0:
        logger.warning("No true box in the scored images: AP is undefined (NaN)")
        return report
    if protocol == "mgca":
        precision: np.ndarray | torch.Tensor = _mgca_ap(pairs, thresholds.tolist(), max_detections)
    else:
        precision = _standard_ap(pairs, thresholds, max_detections)
    report["ap_per_iou"] = {f"{t:.2f}": _mean_defined(precision[i]) for i, t in enumerate(thresholds)}
    report["mAP"] = _mean_defined(precision)  # one mean over thresholds, recall points and classes, as COCO's
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
        positive_images_only: score only images with a true box (standard protocol).
        protocol: ``"standard"`` (COCO AP) or ``"mgca"`` (MGCA's released evaluation, for comparison with papers).
    """

    def __init__(
        self,
        iou_range: Sequence[float] = IOU_RANGE,
        max_detections: int = 100,
        positive_images_only: bool = False,
        protocol: str = "standard",
    ) -> None:
        super().__init__()
        self.iou_range = tuple(iou_range)
        self.max_detections = max_detections
        self.positive_images_only = positive_images_only
        self.protocol = check_protocol(protocol)
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
            self.preds, self.targets, self.iou_range, self.max_detections, self.positive_images_only, self.protocol
        )
        return float(self.report["mAP"])

    def get_buffer(self) -> dict[str, Any]:
        """The last report (what ``IgniteMetricHandler(save_details=True)`` stores as the metric's details)."""
        return self.report
