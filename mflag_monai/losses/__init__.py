"""Losses of M-FLAG (SPEC §1)."""

from .mflag import AlignmentLoss, MFLAGLoss, OrthogonalityLoss

__all__ = ["AlignmentLoss", "OrthogonalityLoss", "MFLAGLoss"]
