"""Factory functions for the M-FLAG model, for configs and scripts."""

from __future__ import annotations

import os
from pathlib import Path

from .image_encoder import build_image_encoder
from .mflag import MFLAG
from .text_encoder import FrozenTextEncoder

__all__ = ["build_mflag"]


def build_mflag(
    image_depth: int = 50,
    text_model: str | os.PathLike = "minilm-demo",
    pooling: str = "cls",
    max_length: int = 512,
    trust_remote_code: bool = False,
    pretrained_image_weights: str | Path | None = None,
    proj_hidden_dim: int = 2048,
    proj_out_dim: int = 1024,
    freeze_text_projector: bool = False,
) -> MFLAG:
    """Build an M-FLAG model: ResNet-``image_depth`` encoder, both projectors, frozen ``text_model``.

    Args:
        image_depth: 18, 34 or 50 (the paper: 50).
        text_model: ``minilm-demo``, ``cxr-bert`` (from the local cache), or a local Hugging Face model folder.
        pooling: ``cls`` (the paper) or ``mean``.
        max_length: tokenizer truncation (512).
        trust_remote_code: let the language model run its own code (off).
        pretrained_image_weights: torchvision-layout encoder weights to start from (e.g. ImageNet), or ``None``.
        proj_hidden_dim, proj_out_dim: projector widths (2048, 1024).
        freeze_text_projector: keep the text projector at its (seeded) random initialisation: its parameters get no
            gradient and the optimiser never sees them. The report side is then a fixed function of the frozen
            language model, so the alignment loss cannot be lowered by moving the reports onto a few directions
            (the projection collapse of a trainable text projector); off in the paper.
    """
    encoder = build_image_encoder(image_depth, pretrained_weights=pretrained_image_weights)
    text = FrozenTextEncoder(text_model, pooling=pooling, max_length=max_length, trust_remote_code=trust_remote_code)
    model = MFLAG(encoder, text, proj_hidden_dim=proj_hidden_dim, proj_out_dim=proj_out_dim)
    if freeze_text_projector:
        model.text_projector.requires_grad_(False)
    return model
