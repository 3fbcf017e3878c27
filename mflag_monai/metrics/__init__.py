"""Evaluation metrics of the downstream protocols."""

from .classification import MeanAUROCMetric, classification_report, per_label_auroc
from .dice import PerImageDiceMetric, mean_dice, per_image_dice

__all__ = ["PerImageDiceMetric", "mean_dice", "per_image_dice", "classification_report", "per_label_auroc", "MeanAUROCMetric"]
