"""The M-FLAG model: a trainable image encoder and two projection heads against a frozen language model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import ResNetEncoder, build_image_encoder
from .projection import ProjectionHead
from .text_encoder import FrozenTextEncoder
from .utils import unwrap_model

__all__ = ["MFLAG", "MFLAGOutput", "TextInputs", "batch_text_inputs"]

#: ``(texts, features)`` for ``MFLAG.forward``: report strings for the frozen language model, or its features.
TextInputs = tuple[list[str] | None, torch.Tensor | None]


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

    def language_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Frozen language-model features ``[B, H]`` for report strings (no gradients), before the text projector."""
        if self.text_encoder is None:
            raise RuntimeError("This MFLAG model has no text encoder: pass text_features instead of texts.")
        return self.text_encoder(texts)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Image projections ``[B, D]`` in the shared image–report space (L2-normalised with ``normalize``)."""
        projection = self.image_projector(self.image_encoder(images))
        return F.normalize(projection, dim=-1) if normalize else projection

    def encode_text(
        self,
        texts: Sequence[str] | None = None,
        normalize: bool = False,
        text_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Report projections ``[B, D]`` in the shared space, from report strings (through the frozen language
        model) or from its ``text_features`` ``[B, H]``; L2-normalised with ``normalize``."""
        if text_features is None:
            if texts is None:
                raise ValueError("MFLAG.encode_text needs texts or text_features.")
            text_features = self.language_features(list(texts))
        projection = self.text_projector(text_features)
        return F.normalize(projection, dim=-1) if normalize else projection

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
            text_features = self.language_features(texts)
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


def batch_text_inputs(
    batch: Mapping[str, Any], network: nn.Module, text_cache: Any = None, report_key: str = "report"
) -> TextInputs:
    """The text side of a pre-training batch, as :meth:`MFLAG.forward` takes it: ``(texts, None)`` for the frozen
    language model, or ``(None, features)`` when a text-feature cache is given.

    Reports found in ``text_cache`` (a :class:`~mflag_monai.data.TextFeatureCache`) are read from it; the others are
    encoded by ``network``'s frozen language model (never replaced by zeros). The trainer, the latent-geometry and
    BatchNorm handlers and the evaluation all go through here, so they see the same text features.

    Args:
        batch: a collated batch with ``report_key`` (``B`` report strings).
        network: the M-FLAG model, possibly wrapped in DDP or ``torch.compile``.
        text_cache: the cache, or ``None`` (every report through the language model, in the forward pass).
        report_key: the batch's report key.
    """
    texts = list(batch[report_key])
    if text_cache is None:
        return texts, None
    features, missing = text_cache.lookup(texts)
    if missing.any():  # new reports: run the frozen model on those only
        fresh = unwrap_model(network).language_features([t for t, m in zip(texts, missing.tolist()) if m])
        features[missing] = fresh.to("cpu", features.dtype)
    return None, features
