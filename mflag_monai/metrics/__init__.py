"""Evaluation metrics of the downstream protocols."""

from .classification import MeanAUROCMetric, classification_report, per_label_auroc
from .detection import DetectionMAPMetric, detection_output_transform, detection_report
from .dice import PerImageDiceMetric, mean_dice, per_image_dice
from .geometry import alignment, effective_rank, latent_geometry, singular_value_spectrum, uniformity

__all__ = ["PerImageDiceMetric", "mean_dice", "per_image_dice", "classification_report", "per_label_auroc", "MeanAUROCMetric",
           "DetectionMAPMetric", "detection_report", "detection_output_transform",
           "effective_rank", "singular_value_spectrum", "alignment", "uniformity", "latent_geometry"]
