"""Detection mAP (IoU 0.40:0.05:0.75): cases computed by hand, and seeded random cases against COCO AP written from
its definition (and pycocotools where it installs) for the standard protocol, and against a re-derivation of MGCA's
released evaluation for the mgca protocol."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from mflag_monai.metrics import DetectionMAPMetric, detection_output_transform, detection_report
from mflag_monai.metrics.detection import IOU_RANGE, iou_thresholds

THRESHOLDS = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]

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


def test_negative_images_and_positive_images_only() -> None:
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


# ------------------------------------------------------------------------------------------- float64 pitfalls by hand


def one_box_case(iou_width: int) -> tuple[list[dict], list[dict]]:
    """A true box of 20 x 10 pixels and one detection inside it of ``iou_width`` x 10: IoU = iou_width / 20 exactly."""
    return (
        [{"boxes": [[0, 0, iou_width, 10]], "scores": [0.9], "labels": [0]}],
        [{"boxes": [[0, 0, 20, 10]], "labels": [0]}],
    )


@pytest.mark.parametrize("width", [9, 13, 14])  # IoU exactly 0.45, 0.65, 0.70
def test_iou_equal_to_the_threshold_matches(width: int) -> None:
    """COCO matches at IoU >= threshold; float32 IoU (with an epsilon in the union) put these just below it."""
    preds, targets = one_box_case(width)
    assert reference_box_iou(np.array(preds[0]["boxes"]), np.array(targets[0]["boxes"]))[0, 0] == width / 20
    aps = detection_report(preds, targets)["ap_per_iou"]
    for threshold, ap in aps.items():  # 1 - 1e-16: COCO's precision tp / (tp + fp + eps) of a single detection
        assert ap == pytest.approx(1.0 if float(threshold) <= width / 20 else 0.0, abs=1e-12), threshold


def test_recall_on_a_recall_point_reads_its_own_precision() -> None:
    """25 true boxes; detections TP, FP, TP: recall 1/25 = 0.04 lies on a recall point, which reads precision 1.

    With float32 recall (0.0399999991 < 0.04) the point 0.04 would read the next precision, 2/3.
    """
    targets = [{"boxes": [[0, 0, 10, 10]], "labels": [0]} for _ in range(25)]
    preds = [{"boxes": [], "scores": [], "labels": []} for _ in range(25)]
    preds[0] = {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]}
    preds[1] = {"boxes": [[50, 50, 60, 60]], "scores": [0.8], "labels": [0]}
    preds[2] = {"boxes": [[0, 0, 10, 10]], "scores": [0.7], "labels": [0]}
    # recall 1/25, 1/25, 2/25; monotone precision 1, 2/3, 2/3: the points 0 .. 0.04 read 1, 0.05 .. 0.08 read 2/3
    expected = (5 + 4 * 2 / 3) / 101
    report = detection_report(preds, targets)
    assert report["mAP"] == pytest.approx(expected, abs=1e-12)
    assert all(ap == pytest.approx(expected, abs=1e-12) for ap in report["ap_per_iou"].values())


def test_thresholds_are_the_decimal_values() -> None:
    assert iou_thresholds().tolist() == THRESHOLDS
    assert iou_thresholds((0.5, 0.95, 0.05)).tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


# ------------------------------------------------------------------------------------------------ seeded random cases


def random_case(rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Up to 10 images: some without true box, some without detection, some with 101-140 detections (beyond COCO's
    100), tied scores in half the cases, a second class in some, and detections nested in a 20 x 10 true box with an
    IoU of exactly 0.40, 0.45, ..., 0.75."""
    preds, targets = [], []
    num_classes = 2 if rng.random() < 0.2 else 1
    tied = rng.random() < 0.5
    for _ in range(int(rng.integers(1, 11))):
        gt = []
        for _ in range(0 if rng.random() < 0.2 else int(rng.integers(1, 5))):
            if rng.random() < 0.3:
                x, y = (int(v) for v in rng.integers(0, 60, 2))
                gt.append([x, y, x + 20, y + 10])
            else:
                x, y, w, h = (int(v) for v in rng.integers([0, 0, 2, 2], [60, 60, 30, 30]))
                gt.append([x, y, x + w, y + h])
        det = []
        num_det = 0 if rng.random() < 0.2 else int(rng.integers(101, 141) if rng.random() < 0.1 else rng.integers(1, 8))
        for _ in range(num_det):
            r = rng.random()
            if gt and r < 0.3:  # nested in a true box: IoU exactly k/20 for a 20 x 10 box
                g = gt[int(rng.integers(len(gt)))]
                w = int(rng.integers(8, 16)) if g[2] - g[0] == 20 and g[3] - g[1] == 10 else g[2] - g[0]
                det.append([g[0], g[1], g[0] + w, g[3]])
            elif gt and r < 0.7:  # jittered true box
                g = gt[int(rng.integers(len(gt)))]
                j = rng.integers(-4, 5, 4)
                x1, y1 = g[0] + j[0], g[1] + j[1]
                det.append([x1, y1, max(x1 + 1, g[2] + j[2]), max(y1 + 1, g[3] + j[3])])
            else:
                x, y, w, h = (int(v) for v in rng.integers([0, 0, 2, 2], [60, 60, 30, 30]))
                det.append([x, y, x + w, y + h])
        scores = np.round(rng.random(num_det), 1) if tied else rng.random(num_det)
        preds.append(
            {
                "boxes": np.asarray(det, dtype=np.float64).reshape(-1, 4),
                "scores": scores.astype(np.float32).astype(np.float64),  # a detector's float32 scores
                "labels": rng.integers(0, num_classes, num_det),
            }
        )
        targets.append(
            {"boxes": np.asarray(gt, dtype=np.float64).reshape(-1, 4), "labels": rng.integers(0, num_classes, len(gt))}
        )
    return preds, targets


def cases(seed: int, n: int) -> list[tuple[list[dict], list[dict]]]:
    rng = np.random.default_rng(seed)
    return [random_case(rng) for _ in range(n)]


def coco_ap_reference(
    preds: list[dict], targets: list[dict], thresholds: list[float], max_det: int = 100
) -> list[float]:
    """COCO AP at each threshold, written from the definition (pycocotools' evaluateImg and accumulate), float64.

    Per image and class: detections ranked by score (ties in input order), the first ``max_det`` kept; each is
    matched to the unmatched true box of highest IoU with IoU >= threshold (of equal IoUs, the later box). Over all
    images the detections are ranked by score again (ties: image order, then rank in the image). Precision
    tp / (tp + fp) is made monotone from the right and read at the recall points 0, 0.01, ..., 1 (the first detection
    whose recall reaches the point; 0 beyond the last). AP is the mean over the points and over the classes that
    have a true box; NaN when none has one. The recall points are COCO's ``np.linspace(0, 1, 101)``: ten of them lie
    one ulp above their decimal (0.35, 0.41, 0.47, 0.57, 0.69, 0.70, 0.82, 0.83, 0.94, 0.95), so a recall of exactly
    7/10 does not reach the point "0.70" in COCO AP.
    """

    def iou(d: np.ndarray, g: np.ndarray) -> float:  # pycocotools' bbIou, from [x, y, w, h]
        dx, dy, dw, dh = d[0], d[1], d[2] - d[0], d[3] - d[1]
        gx, gy, gw, gh = g[0], g[1], g[2] - g[0], g[3] - g[1]
        w = min(dx + dw, gx + gw) - max(dx, gx)
        h = min(dy + dh, gy + gh) - max(dy, gy)
        if w <= 0 or h <= 0:
            return 0.0
        return w * h / (dw * dh + gw * gh - w * h)

    points = np.linspace(0.0, 1.0, 101).tolist()
    classes = sorted({int(c) for t in targets for c in t["labels"]})
    aps = []
    for thr in thresholds:
        per_class = []
        for c in classes:
            ranked, num_gt = [], 0
            for p, t in zip(preds, targets):
                gt = [b for b, label in zip(t["boxes"], t["labels"]) if label == c]
                num_gt += len(gt)
                dets = [(s, b) for b, s, label in zip(p["boxes"], p["scores"], p["labels"]) if label == c]
                dets = sorted(dets, key=lambda d: -d[0])[:max_det]
                matched: set[int] = set()
                for score, box in dets:
                    best, best_iou = -1, min(thr, 1 - 1e-10)
                    for g, gbox in enumerate(gt):
                        if g in matched:
                            continue
                        value = iou(box, gbox)
                        if value >= best_iou:
                            best, best_iou = g, value
                    if best >= 0:
                        matched.add(best)
                    ranked.append((score, best >= 0))
            if num_gt == 0:
                continue
            ranked = sorted(ranked, key=lambda d: -d[0])
            tp = np.cumsum([m for _, m in ranked], dtype=np.float64)
            fp = np.cumsum([not m for _, m in ranked], dtype=np.float64)
            recall = tp / num_gt
            precision = [a / (a + b) for a, b in zip(tp, fp)]
            for i in range(len(precision) - 2, -1, -1):
                precision[i] = max(precision[i], precision[i + 1])
            read = []
            for r in points:
                reached = [i for i, v in enumerate(recall) if v >= r]
                read.append(precision[reached[0]] if reached else 0.0)
            per_class.append(read)
        aps.append(float(np.mean(per_class)) if per_class else math.nan)
    return aps


def assert_close(actual: float, expected: float, tol: float, what: str) -> float:
    """``|actual - expected| <= tol`` (NaN only against NaN); returns the difference (0 for NaN pairs)."""
    if math.isnan(expected) or math.isnan(actual):
        assert math.isnan(expected) and math.isnan(actual), (what, actual, expected)
        return 0.0
    assert abs(actual - expected) <= tol, (what, actual, expected)
    return abs(actual - expected)


def test_default_map_equals_coco_ap_from_its_definition() -> None:
    """The issue's acceptance: default mAP equals COCO AP to 1e-9 on seeded cases (ties, empty images, > 100 boxes)."""
    worst, undefined = 0.0, 0
    for n, (preds, targets) in enumerate(cases(seed=20, n=150)):
        report = detection_report(preds, targets)
        reference = coco_ap_reference(preds, targets, THRESHOLDS)
        for ap, ref in zip(report["ap_per_iou"].values(), reference):
            worst = max(worst, assert_close(ap, ref, 1e-9, f"case {n} AP"))
        defined = [a for a in reference if not math.isnan(a)]
        undefined += not defined
        # every threshold has the same classes, so the mean over all equals the mean of the per-threshold APs
        worst = max(
            worst, assert_close(report["mAP"], float(np.mean(defined)) if defined else math.nan, 1e-9, f"case {n}")
        )
    assert undefined < 20  # most cases have a true box
    assert worst <= 1e-9


def pycocotools_precision(
    preds: list[dict], targets: list[dict], thresholds: Sequence[float], max_det: int = 100
) -> np.ndarray:
    """pycocotools' ``COCOeval`` precision table ``[T, 101, K]`` (K: the classes with a true box), built in memory as
    a user of pycocotools would: ``[x, y, w, h]`` boxes, image ids in input order, annotation ids from 1 (0 means
    unmatched to ``accumulate``), area range "all" as ``[-inf, inf]`` (no box is ignored, whatever its area), one
    ``maxDets``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def anns(items: list[dict], with_scores: bool) -> list[dict]:
        out = []
        for i, item in enumerate(items):
            boxes = np.asarray(item["boxes"], dtype=np.float64).reshape(-1, 4)
            for j, (b, c) in enumerate(zip(boxes.tolist(), item["labels"])):
                w, h = b[2] - b[0], b[3] - b[1]
                ann = {"id": len(out) + 1, "image_id": i, "category_id": int(c), "bbox": [b[0], b[1], w, h]}
                ann.update(area=w * h, iscrowd=0)
                if with_scores:
                    ann["score"] = float(item["scores"][j])
                out.append(ann)
        return out

    images = [{"id": i} for i in range(len(preds))]
    categories = [{"id": c} for c in sorted({int(c) for t in targets for c in t["labels"]})]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = {"images": images, "annotations": anns(targets, False), "categories": categories}
        coco_dt.dataset = {"images": images, "annotations": anns(preds, True), "categories": categories}
        coco_gt.createIndex()
        coco_dt.createIndex()
        evaluation = COCOeval(coco_gt, coco_dt, "bbox")
        evaluation.params.iouThrs = np.asarray(thresholds, dtype=np.float64)
        evaluation.params.maxDets = [max_det]
        evaluation.params.areaRng, evaluation.params.areaRngLbl = [[-np.inf, np.inf]], ["all"]
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation.eval["precision"][:, :, :, 0, 0]


def mean_defined(values: np.ndarray) -> float:
    """COCO's mean over the entries > -1 (NaN without any)."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else math.nan


def same(a: float, b: float) -> bool:
    """Equal, or both NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


def test_default_map_equals_pycocotools() -> None:
    """pycocotools' COCOeval itself (area range 'all', maxDets 100, the protocol's IoU thresholds), exactly."""
    for n, (preds, targets) in enumerate(cases(seed=21, n=150)):
        report = detection_report(preds, targets)
        precision = pycocotools_precision(preds, targets, THRESHOLDS)
        assert same(report["mAP"], mean_defined(precision)), f"case {n}"
        for ap, table in zip(report["ap_per_iou"].values(), precision):
            assert same(ap, mean_defined(table)), f"case {n}"


# --------------------------------------------------- the hand-written COCO AP the standard protocol used to compute


def reference_box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise float64 IoU ``[N, M]`` of ``[x1, y1, x2, y2]`` boxes: 0 without overlap, no epsilon in the union."""
    a = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    overlap = (wh[..., 0] > 0) & (wh[..., 1] > 0)
    inter = np.where(overlap, wh[..., 0] * wh[..., 1], 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=overlap)


def reference_coco_precision(
    preds: list[dict], targets: list[dict], thresholds: Sequence[float], max_det: int = 100
) -> np.ndarray:
    """The package's hand-written COCO AP before the standard protocol delegated to pycocotools: MONAI's greedy
    matcher (``matching_batch``, pycocotools' loop) on :func:`reference_box_iou`, then pycocotools' ``accumulate``
    written out in float64. Precision ``[T, 101, K]`` over the classes with a true box, -1 where a class has none."""
    from monai.apps.detection.metrics.matching import matching_batch

    def arrays(items: list[dict], key: str, shape: tuple[int, ...], dtype: type) -> list[np.ndarray]:
        return [np.asarray(item[key], dtype=dtype).reshape(shape) for item in items]

    true_labels = arrays(targets, "labels", (-1,), np.int64)
    classes = sorted({int(c) for labels in true_labels for c in labels.tolist()})
    matches = matching_batch(
        iou_fn=reference_box_iou,
        iou_thresholds=list(thresholds),
        pred_boxes=arrays(preds, "boxes", (-1, 4), np.float64),
        pred_classes=arrays(preds, "labels", (-1,), np.int64),
        pred_scores=arrays(preds, "scores", (-1,), np.float64),
        gt_boxes=arrays(targets, "boxes", (-1, 4), np.float64),
        gt_classes=true_labels,
        max_detections=max_det,
    )
    points = np.linspace(0.0, 1.0, 101, endpoint=True)
    precision = -np.ones((len(thresholds), len(points), len(classes)))
    for k, c in enumerate(classes):
        results = [r[c] for r in matches if c in r]
        if not results:
            continue
        scores = np.concatenate([r["dtScores"][:max_det] for r in results])
        order = np.argsort(-scores, kind="mergesort")
        dt_matches = np.concatenate([r["dtMatches"][:, :max_det] for r in results], axis=1)[:, order] > 0
        dt_ignore = np.concatenate([r["dtIgnore"][:, :max_det] for r in results], axis=1)[:, order] > 0
        num_gt = int(np.count_nonzero(np.concatenate([r["gtIgnore"] for r in results]) == 0))
        if num_gt == 0:
            continue
        tp_sum = np.cumsum(dt_matches & ~dt_ignore, axis=1).astype(np.float64)
        fp_sum = np.cumsum(~dt_matches & ~dt_ignore, axis=1).astype(np.float64)
        for t in range(len(thresholds)):
            tp, fp = tp_sum[t], fp_sum[t]
            recall = tp / num_gt
            prec = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[::-1])[::-1]
            idx = np.searchsorted(recall, points, side="left")
            reached = idx < len(prec)
            precision[t, :, k] = 0.0
            precision[t, reached, k] = prec[idx[reached]]
    return precision


def float_case(rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Up to 7 images with a detector's float32 boxes and scores (not on the pixel grid): detections jittered around
    the true boxes by 0.01 to 5 pixels or anywhere, some clipped at 0, tied scores in half the cases, two classes,
    and a fifth of the true boxes made degenerate (zero or negative width or height)."""
    preds, targets = [], []
    for _ in range(int(rng.integers(1, 8))):
        num_gt, num_det = int(rng.integers(0, 4)), int(rng.integers(0, 12))
        gt = rng.random((num_gt, 4)) * 200
        gt[:, 2:] = gt[:, :2] + rng.random((num_gt, 2)) * 60 - np.where(rng.random((num_gt, 1)) < 0.2, 60, 0)
        gt = gt.astype(np.float32)
        det = []
        for _ in range(num_det):
            if num_gt and rng.random() < 0.7:
                det.append(gt[int(rng.integers(num_gt))] + rng.normal(0, rng.choice([0.01, 1, 5]), 4))
            else:
                xy = rng.random(2) * 200
                det.append(np.r_[xy, xy + rng.random(2) * 60])
        boxes = np.asarray(det, dtype=np.float32).reshape(-1, 4)
        if rng.random() < 0.3:
            boxes = np.clip(boxes, 0, None)
        scores = rng.random(num_det).astype(np.float32)
        if rng.random() < 0.5:
            scores = np.round(scores, 1).astype(np.float32)
        preds.append({"boxes": boxes, "scores": scores.astype(np.float64), "labels": rng.integers(0, 2, num_det)})
        targets.append({"boxes": gt, "labels": rng.integers(0, 2, num_gt)})
    return preds, targets


def edge_cases() -> dict[str, tuple[list[dict], list[dict]]]:
    """Named cases at the edges of the definition."""
    none = {"boxes": [], "scores": [], "labels": []}
    box = [[0, 0, 10, 10]]
    perfect = [{**t, "scores": [1.0] * len(t["labels"])} for t in TARGETS]
    return {
        "hand-made": (PREDS, TARGETS),
        "perfect": (perfect, TARGETS),
        "no detection": ([none, none], TARGETS),
        "detections only on images without true box": (
            [none, {"boxes": box, "scores": [0.9], "labels": [0]}],
            [{"boxes": box, "labels": [0]}, {"boxes": [], "labels": []}],
        ),
        "all images empty but one": (
            [none] * 4 + [{"boxes": box, "scores": [0.3], "labels": [0]}],
            [{"boxes": [], "labels": []}] * 4 + [{"boxes": box, "labels": [0]}],
        ),
        "tied scores within and across images": (
            [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "scores": [0.5, 0.5], "labels": [0, 0]}] * 3,
            [{"boxes": box, "labels": [0]}] * 3,
        ),
        "identical detections on one true box": (
            [{"boxes": box * 3, "scores": [0.7] * 3, "labels": [0] * 3}],
            [{"boxes": box, "labels": [0]}],
        ),
        "a class only in the predictions": (
            [{"boxes": box * 2, "scores": [0.9, 0.8], "labels": [0, 3]}],
            [{"boxes": box, "labels": [0]}],
        ),
        "a class without detection": (
            [{"boxes": box, "scores": [0.9], "labels": [0]}],
            [{"boxes": box * 2, "labels": [0, 1]}],
        ),
        "zero-area boxes": (
            [{"boxes": [[5, 5, 5, 9], [0, 0, 10, 10]], "scores": [0.9, 0.8], "labels": [0, 0]}],
            [{"boxes": [[5, 5, 5, 9], [0, 0, 10, 10]], "labels": [0, 0]}],
        ),
        **{f"IoU exactly {w / 20:.2f}": one_box_case(w) for w in (8, 9, 13, 14, 15)},
    }


def test_pycocotools_equals_the_hand_written_coco_ap_exactly() -> None:
    """The standard protocol's mAP and APs per threshold against pycocotools and against the hand-written COCO AP it
    replaced: every precision entry equal (``np.array_equal``), and the reported means equal with ``==``, on edge
    cases, integer boxes (ties, > 100 detections, IoU on the thresholds), float32 boxes, 3 detections per image, and
    the thresholds 0.50:0.05:0.95."""
    rng = np.random.default_rng(24)
    named = list(edge_cases().items())
    named += [(f"integer case {n}", case) for n, case in enumerate(cases(seed=25, n=60))]
    named += [(f"float32 case {n}", float_case(rng)) for n in range(60)]
    for name, (preds, targets) in named:
        for iou_range, max_det in ((IOU_RANGE, 100), (IOU_RANGE, 3), ((0.5, 0.95, 0.05), 100)):
            thresholds = iou_thresholds(iou_range).tolist()
            report = detection_report(preds, targets, iou_range=iou_range, max_detections=max_det)
            if not any(len(t["labels"]) for t in targets):
                assert math.isnan(report["mAP"]), name  # no true box: undefined, pycocotools is not asked
                continue
            expected = reference_coco_precision(preds, targets, thresholds, max_det)
            assert np.array_equal(pycocotools_precision(preds, targets, thresholds, max_det), expected), name
            assert same(report["mAP"], mean_defined(expected)), (name, report["mAP"], mean_defined(expected))
            for ap, table in zip(report["ap_per_iou"].values(), expected):
                assert same(ap, mean_defined(table)), name


# ------------------------------------------------------------------------------------------------ mgca protocol


def mgca_reference(preds: list[dict], targets: list[dict], thresholds: list[float]) -> tuple[float, list[float]]:
    """MGCA's released evaluation re-derived in numpy float32: ``ssl_detector.py`` passes an image to the metric only
    when it has a box after the confidence threshold and NMS and a true box; ``torchmetrics==0.8.2``'s
    ``MeanAveragePrecision`` then (area range "all", 100 detections per image): torchvision's float32 IoU, a match
    needs IoU > threshold in float32, of equal IoUs the first true box; detections ranked by ``torch.sort`` (whose
    order of tied scores is part of the definition, so it is used here too); float32 counts, recall and precision;
    zigzags removed by repeated float32 additions; recall points ``torch.linspace(0, 1, 101)``. Returns
    ``(mAP, AP per threshold)``; NaN when no kept image has a true box."""
    f32 = np.float32
    kept = [(p, t) for p, t in zip(preds, targets) if len(p["boxes"]) and len(t["boxes"])]
    points = torch.linspace(0.0, 1.0, 101).numpy()
    classes = sorted({int(c) for p, t in kept for c in [*p["labels"], *t["labels"]]})
    table = -np.ones((len(thresholds), 101, len(classes)), dtype=f32)

    def area(b: np.ndarray) -> np.ndarray:
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    for k, c in enumerate(classes):
        scores_all, matches_all, num_gt = [], [], 0
        for p, t in kept:
            det = np.asarray(p["boxes"], f32)[np.asarray(p["labels"]) == c]
            scores = np.asarray(p["scores"], f32)[np.asarray(p["labels"]) == c]
            gt = np.asarray(t["boxes"], f32)[np.asarray(t["labels"]) == c]
            if not len(det) and not len(gt):
                continue
            order = torch.sort(torch.from_numpy(scores), descending=True).indices.numpy()
            det, scores = det[order][:100], scores[order]
            num_gt += len(gt)
            matches = np.zeros((len(thresholds), len(det)), dtype=bool)
            if len(det) and len(gt):
                wh = np.clip(
                    np.minimum(det[:, None, 2:], gt[None, :, 2:]) - np.maximum(det[:, None, :2], gt[None, :, :2]),
                    0,
                    None,
                )
                inter = wh[..., 0] * wh[..., 1]
                iou = inter / (area(det)[:, None] + area(gt)[None, :] - inter)
                for i, thr in enumerate(thresholds):
                    taken = np.zeros(len(gt), dtype=bool)
                    for d in range(len(det)):
                        masked = iou[d] * ~taken
                        m = int(np.argmax(masked))
                        if masked[m] > f32(thr):
                            matches[i, d], taken[m] = True, True
            scores_all.append(scores[:100])
            matches_all.append(matches)
        if num_gt == 0:
            continue
        scores = np.concatenate(scores_all)
        order = torch.argsort(torch.from_numpy(scores), descending=True).numpy()
        matches = np.concatenate(matches_all, axis=1)[:, order]
        for i in range(len(thresholds)):
            tp = np.cumsum(matches[i], dtype=f32)
            fp = np.cumsum(~matches[i], dtype=f32)
            recall = tp / f32(num_gt)
            precision = tp / (fp + tp + f32(np.finfo(np.float64).eps))
            diff = np.ones(1, dtype=f32)
            while not np.all(diff == 0):
                diff = np.clip(np.concatenate([precision[1:] - precision[:-1], np.zeros(1, f32)]), 0, None)
                precision = precision + diff
            idx = np.searchsorted(recall, points, side="left")
            table[i, :, k] = [precision[j] if j < len(precision) else 0 for j in idx]

    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(np.mean(values, dtype=np.float64)) if values.size else math.nan

    return mean(table), [mean(table[i]) for i in range(len(thresholds))]


def test_mgca_skips_images_without_detection_or_true_box() -> None:
    """MGCA's code never counted the true boxes of images left without a detection, nor detections on negatives."""
    preds = [
        {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]},  # A: found
        {"boxes": [], "scores": [], "labels": []},  # B: its true box is missed
        {"boxes": [[30, 30, 40, 40]], "scores": [0.95], "labels": [0]},  # C: a false positive on a negative image
    ]
    targets = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}, {"boxes": [[20, 20, 30, 30]], "labels": [0]}]
    targets.append({"boxes": [], "labels": []})
    mgca = detection_report(preds, targets, protocol="mgca")
    assert (mgca["mAP"], mgca["images"], mgca["images_skipped"], mgca["true_boxes"]) == (1.0, 1, 2, 1)
    # standard: FP (0.95), TP (0.9) with 2 true boxes: recall 0, 1/2; precision 0, 1/2 -> 1/2 up to recall 1/2
    standard = detection_report(preds, targets)
    assert standard["mAP"] == pytest.approx(51 * 0.5 / 101, abs=1e-12) and standard["images"] == 3
    assert standard["protocol"] == "standard" and mgca["protocol"] == "mgca"


def test_mgca_needs_iou_strictly_above_the_threshold() -> None:
    """IoU exactly 0.5 (a 10 x 10 detection in a 20 x 10 true box): standard matches it up to 0.50, MGCA below."""
    preds, targets = one_box_case(10)
    standard = detection_report(preds, targets)["ap_per_iou"]
    mgca = detection_report(preds, targets, protocol="mgca")["ap_per_iou"]
    assert [standard[k] for k in ("0.45", "0.50", "0.55")] == pytest.approx([1.0, 1.0, 0.0], abs=1e-12)
    assert [mgca[k] for k in ("0.45", "0.50", "0.55")] == [1.0, 0.0, 0.0]


def test_mgca_equals_the_rederivation_of_mgca_code() -> None:
    worst, differs = 0.0, 0
    for n, (preds, targets) in enumerate(cases(seed=22, n=120)):
        report = detection_report(preds, targets, protocol="mgca")
        expected, expected_per_iou = mgca_reference(preds, targets, THRESHOLDS)
        worst = max(worst, assert_close(report["mAP"], expected, 1e-6, f"case {n}"))
        for ap, ref in zip(report["ap_per_iou"].values(), expected_per_iou):
            assert_close(ap, ref, 1e-6, f"case {n} AP")
        standard = detection_report(preds, targets)["mAP"]
        differs += not math.isnan(expected) and not abs(expected - standard) < 1e-6
    assert differs > 30  # the two protocols do differ on these cases
    assert worst <= 1e-6


def test_mgca_equals_torchmetrics_0_8_where_installed() -> None:
    """MGCA's metric itself, where ``torchmetrics`` 0.8.x is installed (MGCA pinned 0.8.2)."""
    torchmetrics = pytest.importorskip("torchmetrics")
    if not torchmetrics.__version__.startswith("0.8."):
        pytest.skip(f"torchmetrics {torchmetrics.__version__}: MGCA's code used 0.8.2")
    from torchmetrics.detection.mean_ap import MeanAveragePrecision

    for n, (preds, targets) in enumerate(cases(seed=23, n=60)):
        metric = MeanAveragePrecision(iou_thresholds=THRESHOLDS)
        kept = [(p, t) for p, t in zip(preds, targets) if len(p["boxes"]) and len(t["boxes"])]  # ssl_detector.py
        if not kept:
            continue
        metric.update(
            [{k: torch.as_tensor(p[k], dtype=torch.float32 if k != "labels" else None) for k in p} for p, _ in kept],
            [{k: torch.as_tensor(t[k], dtype=torch.float32 if k != "labels" else None) for k in t} for _, t in kept],
        )
        expected = float(metric.compute()["map"])
        assert_close(
            detection_report(preds, targets, protocol="mgca")["mAP"],
            math.nan if expected == -1 else expected,
            0.0,
            f"case {n}",
        )


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="protocol"):
        detection_report(PREDS, TARGETS, protocol="coco")
    with pytest.raises(ValueError, match="positive_images_only"):
        detection_report(PREDS, TARGETS, positive_images_only=True, protocol="mgca")
    with pytest.raises(ValueError, match="protocol"):
        DetectionMAPMetric(protocol="MGCA")


def test_ignite_metric_in_mgca_protocol() -> None:
    metric = DetectionMAPMetric(protocol="mgca")
    preds, targets = one_box_case(10)
    metric(preds, targets)
    assert metric.aggregate() == pytest.approx(2 / 8)  # matched at 0.40 and 0.45 only
    assert metric.get_buffer()["protocol"] == "mgca"
