"""Losses: the pre-training objectives (M-FLAG's, InfoNCE; :mod:`.objectives` picks one by name) and the downstream
segmentation loss."""

from .infonce import InfoNCELoss
from .mflag import AlignmentLoss, MFLAGLoss, OrthogonalityLoss, orthogonality_floor
from .objectives import OBJECTIVES, build_objective, register_objective
from .segmentation import FocalLogDiceLoss

__all__ = [
    "OBJECTIVES",
    "AlignmentLoss",
    "FocalLogDiceLoss",
    "InfoNCELoss",
    "MFLAGLoss",
    "OrthogonalityLoss",
    "build_objective",
    "orthogonality_floor",
    "register_objective",
]
