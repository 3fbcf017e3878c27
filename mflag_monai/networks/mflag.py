"""The M-FLAG model: a trainable image encoder and two projection heads against a frozen language model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from .image_encoder import ResNetEncoder, build_image_encoder
from .projection import ProjectionHead
from .text_encoder import FrozenTextEncoder

__all__ = ["MFLAGOutput", "MFLAG"]


class MFLAGOutput(NamedTuple):
    """What :class:`MFLAG` returns: the raw encoder feature and both projections."""

    image_feature: torch.Tensor  # z, [B, 2048] for ResNet-50: the orthogonality loss acts on it
    image_proj: torch.Tensor  # [B, 1024]
    text_proj: torch.Tensor  # [B, 1024]


class MFLAG(nn.Module):
    """Image encoder + vision projector + text projector, aligned with a frozen text encoder.

    The frozen text encoder is deliberately *not* a registered sub-module: its weights would otherwise be written
    into every checkpoint (440 MB for CXR-BERT) and seen by DDP, although they never change. It still follows the
    model across devices (``_apply``). Pass ``text_features`` instead of ``texts`` to skip the language model.

    Args:
        image_encoder: a :class:`ResNetEncoder` (or any module returning ``[B, feature_dim]`` with ``feature_dim``).
        text_encoder: the frozen language model wrapper; may be ``None`` when features are always given.
        text_hidden_size: the language model's hidden size when ``text_encoder`` is ``None``.
        proj_hidden_dim: hidden width of both projectors (2048).
        proj_out_dim: output width of both projectors (1024).
    """

    def __init__(
        self,
        image_encoder: ResNetEncoder | None = None,
        text_encoder: FrozenTextEncoder | None = None,
        text_hidden_size: int | None = None,
        proj_hidden_dim: int = 2048,
        proj_out_dim: int = 1024,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder if image_encoder is not None else build_image_encoder(50)
        hidden = text_encoder.hidden_size if text_encoder is not None else text_hidden_size
        if hidden is None:
            raise ValueError("Give a text_encoder or the text_hidden_size of the features you will pass in.")
        feature_dim = int(self.image_encoder.feature_dim)
        self.image_projector = ProjectionHead(feature_dim, proj_hidden_dim, proj_out_dim)
        self.text_projector = ProjectionHead(int(hidden), proj_hidden_dim, proj_out_dim)
        self.__dict__["text_encoder"] = text_encoder  # unregistered on purpose, see the class docstring

    def _apply(self, fn: Callable, *args, **kwargs) -> MFLAG:
        super()._apply(fn, *args, **kwargs)
        if self.text_encoder is not None:
            self.text_encoder._apply(fn, *args, **kwargs)
        return self

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Frozen language-model features ``[B, H]`` for report strings (no gradients)."""
        if self.text_encoder is None:
            raise RuntimeError("This MFLAG model has no text encoder: pass text_features instead of texts.")
        return self.text_encoder(texts)

    def forward(
        self,
        images: torch.Tensor,
        texts: Sequence[str] | None = None,
        text_features: torch.Tensor | None = None,
    ) -> MFLAGOutput:
        """Encode a batch of images and their reports.

        Args:
            images: ``[B, C, H, W]``.
            texts: ``B`` report strings, encoded by the frozen language model; or
            text_features: ``[B, H]`` language-model features computed beforehand (e.g. from a cache).
        """
        if text_features is None:
            if texts is None:
                raise ValueError("MFLAG.forward needs texts or text_features.")
            text_features = self.encode_text(texts)
        return self.project(self.image_encoder(images), text_features)

    def project(self, image_feature: torch.Tensor, text_features: torch.Tensor) -> MFLAGOutput:
        """Both projection heads on encoder features ``[B, D]`` and language-model features ``[B, H]``.

        The second half of :meth:`forward`; gradient-cached pre-training calls it on the whole batch after encoding
        the images in micro-batches.
        """
        z = image_feature
        return MFLAGOutput(z, self.image_projector(z), self.text_projector(text_features.to(z.dtype)))

    def parameter_counts(self) -> dict[str, int]:
        """Trainable, frozen and total parameter counts, the frozen language model included."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        if self.text_encoder is not None:
            frozen += sum(p.numel() for p in self.text_encoder.parameters())
        return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}
