"""Train tasks: the segmentation bundle's train.yaml, driven by MONAI Label's bundle trainer."""

from .mflag import SegmentationTrain

__all__ = ["SegmentationTrain"]
