"""Evaluation metrics of the downstream protocols."""

from .dice import PerImageDiceMetric, mean_dice, per_image_dice

__all__ = ["PerImageDiceMetric", "mean_dice", "per_image_dice"]
