"""Losses of M-FLAG (SPEC §1)."""

from .mflag import AlignmentLoss, MFLAGLoss, OrthogonalityLoss, orthogonality_floor
from .segmentation import FocalLogDiceLoss

__all__ = ["AlignmentLoss", "OrthogonalityLoss", "MFLAGLoss", "FocalLogDiceLoss", "orthogonality_floor"]
