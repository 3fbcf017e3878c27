"""Metric protocols: the standard definitions (default) and MGCA's released evaluation code (comparability mode).

``"standard"`` computes each metric as its reference implementation defines it: detection mAP equals pycocotools' COCO
AP, mean AUROC equals scikit-learn's ``roc_auc_score`` averaged over the labels where AUROC is defined, Dice is the
per-image rule of docs/method.md#segmentation averaged over images.

``"mgca"`` re-derives what MGCA's released code (``HKU-MedAI/MGCA``: ``ssl_detector.py``, ``ssl_segmenter.py``,
``ssl_finetuner.py`` with ``torchmetrics==0.8.2``) computed, so that a number can be put next to a table computed with
that code (the published segmentation and detection tables; docs/method.md#published-results). It is a comparability
mode, not a better metric: it skips images, works in float32 and averages batch means. Each metric module documents
exactly what the mode changes.
"""

from __future__ import annotations

__all__ = ["PROTOCOLS", "check_protocol", "metric_description"]

#: The protocol names: ``"standard"`` (default) and ``"mgca"`` (MGCA's released code, for comparison with papers).
PROTOCOLS: tuple[str, ...] = ("standard", "mgca")

_DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("detection", "standard"): (
        "COCO AP as pycocotools computes it (greedy matching by score at IoU >= threshold, 101 recall points, at most"
        " 100 boxes per image; float64) of the boxes scored >= score_threshold after NMS, averaged over IoU"
        " 0.40:0.05:0.75; every test image counts"
    ),
    ("detection", "mgca"): (
        "comparability mode (metric_protocol mgca): mAP over IoU 0.40:0.05:0.75 as MGCA's released code computed it"
        " (torchmetrics 0.8.2 MeanAveragePrecision: IoU strictly above the threshold, float32 IoU and recall);"
        " only images with a true box and at least one box after the confidence threshold and NMS are scored"
    ),
    ("segmentation", "standard"): (
        "per-image Dice at threshold 0.5 (empty ground truth: 1 if the prediction is empty, else 0), mean over images"
    ),
    ("segmentation", "mgca"): (
        "comparability mode (metric_protocol mgca): per-image Dice at threshold 0.5 (empty-truth rule), averaged"
        " within each test batch, then over batches, as MGCA's released code reported it"
    ),
    ("classification", "standard"): (
        "AUROC per label (as scikit-learn's roc_auc_score); the mean over the labels with both classes in the split;"
        " top-1 accuracy for multi-class"
    ),
    ("classification", "mgca"): (
        "comparability mode (metric_protocol mgca): AUROC per label as torchmetrics 0.8.2 computed it in MGCA's"
        " released code (float32; a label with one class in the split scores 0 and is averaged in); top-1 accuracy"
        " for multi-class"
    ),
}


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else ``ValueError``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"metric protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def metric_description(task: str, protocol: str = "standard") -> str:
    """One sentence saying how a task's reported metric is computed under ``protocol`` (for the metrics JSON).

    Args:
        task: ``"detection"``, ``"segmentation"`` or ``"classification"``.
        protocol: one of :data:`PROTOCOLS`.
    """
    check_protocol(protocol)
    if (task, protocol) not in _DESCRIPTIONS:
        raise ValueError(f"unknown task {task!r}: expected detection, segmentation or classification")
    return _DESCRIPTIONS[(task, protocol)]
