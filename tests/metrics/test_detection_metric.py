"""Detection mAP (IoU 0.40:0.05:0.75, COCO-style 101-point AP) against a case computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mflag_monai.metrics import DetectionMAPMetric, detection_output_transform, detection_report

# Image A: two true boxes; image B: one. Four detections, ranked by score:
#   p1 0.9 on A, IoU 1 with a1                    -> TP at every threshold
#   p3 0.8 on B, far from everything              -> FP
#   p2 0.7 on A, IoU 100/140 = 0.714 with a2      -> TP up to IoU 0.70, FP at 0.75
#   p4 0.6 on B, IoU 100/120 = 0.833 with b1      -> TP at every threshold
PREDS = [
    {"boxes": [[0, 0, 10, 10], [20, 20, 30, 34]], "scores": [0.9, 0.7], "labels": [0, 0]},
    {"boxes": [[50, 50, 60, 60], [0, 0, 10, 12]], "scores": [0.8, 0.6], "labels": [0, 0]},
]
TARGETS = [
    {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 0]},
    {"boxes": [[0, 0, 10, 10]], "labels": [0]},
]
# IoU <= 0.70 (7 thresholds): TP FP TP TP -> recall 1/3, 1/3, 2/3, 1; precision 1, 1/2, 2/3, 3/4; made monotone
# from the right: 1, 3/4, 3/4, 3/4. At the 101 recall points 0, 0.01, ..., 1: the 34 points <= 1/3 read 1, the 67
# others 3/4 -> AP = (34 + 67 * 0.75) / 101.
AP_LOW = (34 + 67 * 0.75) / 101
# IoU 0.75: TP FP FP TP -> recall 1/3, 1/3, 1/3, 2/3; precision 1, 1/2, 1/3, 1/2 -> monotone 1, 1/2, 1/2, 1/2; the 34
# points <= 1/3 read 1, the 33 in (1/3, 2/3] read 1/2, the 34 above the highest recall read 0 -> AP = 50.5 / 101.
AP_075 = (34 + 33 * 0.5) / 101


def test_hand_computed_two_image_case() -> None:
    report = detection_report(PREDS, TARGETS)
    assert report["iou_thresholds"] == [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]
    for threshold, ap in report["ap_per_iou"].items():
        assert ap == pytest.approx(AP_075 if threshold == "0.75" else AP_LOW, abs=1e-9), threshold
    assert report["mAP"] == pytest.approx((7 * AP_LOW + AP_075) / 8, abs=1e-9)  # 0.79239
    assert (report["images"], report["true_boxes"], report["predicted_boxes"]) == (2, 3, 4)


def test_negative_images_and_mgca_mode() -> None:
    """A false positive on an image without true box costs precision, unless only positive images are scored."""
    preds = [PREDS[0], {"boxes": [[0, 0, 5, 5]], "scores": [0.95], "labels": [0]}]
    targets = [TARGETS[0], {"boxes": [], "labels": []}]
    # image A alone: p1, p2 both TP up to IoU 0.70 -> AP 1; at 0.75 recall stops at 1/2, where 51 of 101 points read 1
    only_a = detection_report(preds[:1], targets[:1])
    assert only_a["mAP"] == pytest.approx((7 * 1.0 + 51 / 101) / 8)
    # with the negative image's FP ranked first: precision 0, 1/2, 2/3 -> monotone 2/3 everywhere up to IoU 0.70;
    # at 0.75: 0, 1/2, 1/3 -> 1/2 for the 51 points up to recall 1/2, then 0
    with_negative = detection_report(preds, targets)
    assert with_negative["mAP"] == pytest.approx((7 * 2 / 3 + 51 * 0.5 / 101) / 8)
    assert detection_report(preds, targets, positive_images_only=True)["mAP"] == pytest.approx(only_a["mAP"])


def test_perfect_empty_and_undefined() -> None:
    perfect = [{**t, "scores": [1.0] * len(t["labels"])} for t in TARGETS]
    assert detection_report(perfect, TARGETS)["mAP"] == 1.0
    nothing = [{"boxes": [], "scores": [], "labels": []}] * 2
    assert detection_report(nothing, TARGETS)["mAP"] == 0.0  # no detection: recall 0
    assert math.isnan(detection_report(nothing, [{"boxes": [], "labels": []}] * 2)["mAP"])  # no true box: undefined


def test_ignite_metric_accumulates_evaluator_outputs() -> None:
    """The form the bundle uses: per-image evaluator outputs through ``detection_output_transform``, two batches."""
    rows = [
        {"pred_boxes": torch.tensor(p["boxes"], dtype=torch.float32), "pred_scores": torch.tensor(p["scores"]),
         "pred_labels": torch.tensor(p["labels"]), "boxes": torch.tensor(t["boxes"], dtype=torch.float32),
         "labels": torch.tensor(t["labels"])}
        for p, t in zip(PREDS, TARGETS)
    ]  # fmt: skip
    metric = DetectionMAPMetric()
    assert math.isnan(metric.aggregate())
    for row in rows:
        metric(*detection_output_transform([row]))
    assert metric.aggregate() == pytest.approx((7 * AP_LOW + AP_075) / 8)
    assert metric.get_buffer()["ap_per_iou"]["0.75"] == pytest.approx(AP_075)
    metric.reset()
    assert math.isnan(metric.aggregate())
