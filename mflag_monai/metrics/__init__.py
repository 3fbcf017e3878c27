"""Evaluation metrics of the downstream protocols."""

from .classification import MeanAUROCMetric, classification_report, mean_auroc, per_label_auroc
from .detection import DetectionMAPMetric, detection_output_transform, detection_report
from .dice import PerImageDiceMetric, batch_mean_dice, batched_from_engine, mean_dice, per_image_dice
from .geometry import alignment, effective_rank, latent_geometry, singular_value_spectrum, uniformity
from .loss import ValidationLoss
from .protocol import PROTOCOLS, metric_description
from .retrieval import recall_at_k, report_match, retrieval_recall

__all__ = [
    "PROTOCOLS",
    "DetectionMAPMetric",
    "MeanAUROCMetric",
    "PerImageDiceMetric",
    "ValidationLoss",
    "alignment",
    "batch_mean_dice",
    "batched_from_engine",
    "classification_report",
    "detection_output_transform",
    "detection_report",
    "effective_rank",
    "latent_geometry",
    "mean_auroc",
    "mean_dice",
    "metric_description",
    "per_image_dice",
    "per_label_auroc",
    "recall_at_k",
    "report_match",
    "retrieval_recall",
    "singular_value_spectrum",
    "uniformity",
]
