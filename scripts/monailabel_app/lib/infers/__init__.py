"""Infer tasks for the segmentation and classification bundles."""

from .mflag import ClassificationInfer, SegmentationInfer

__all__ = ["ClassificationInfer", "SegmentationInfer"]
