"""Per-image Dice of the MGCA segmentation protocol (docs/method.md#segmentation).

Each image scores ``2|P ∩ T| / (|P| + |T|)`` with ``P`` the prediction binarised at ``> threshold`` and ``T`` the
ground truth; an image whose ground truth is empty scores 1 if the prediction is empty too, else 0. The reported
number is the mean over images (not a Dice of the pooled pixels, and empty images are not skipped). The per-image
values are MONAI's ``DiceMetric(include_background=True, ignore_empty=False, reduction="none")`` of the binarised
masks (its ``ignore_empty=False`` is the empty-mask rule).

Under the ``"mgca"`` protocol (:mod:`~mflag_monai.metrics.protocol`, a comparability mode) the same per-image values
are averaged the way MGCA's released ``ssl_segmenter.py`` reported them: a float32 mean within each batch (images
with a non-empty ground truth first, then the others, as its ``get_dice`` concatenates them), then the mean of the
batch means. A short last batch then weighs as much as a full one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import DiceMetric, compute_dice

from .protocol import check_protocol

__all__ = ["PerImageDiceMetric", "batch_mean_dice", "mean_dice", "per_image_dice"]


def _plain(x: Any) -> torch.Tensor:
    """A plain tensor (MetaTensor metadata would only slow the arithmetic down and leak into the result)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


def _as_batch(x: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """``[B, H, W]`` from ``[B, 1, H, W]``, ``[B, H, W]`` or a list of ``[1, H, W]`` / ``[H, W]`` tensors."""
    if isinstance(x, (list, tuple)):
        items = [_plain(i) for i in x]
        items = [i[0] if i.ndim == 3 and i.shape[0] == 1 else i for i in items]
        if any(i.ndim != 2 for i in items):
            shapes = [tuple(i.shape) for i in items]
            raise ValueError(f"{name}: expected a list of [1, H, W] or [H, W] tensors, got {shapes}")
        x = torch.stack(items)
    x = _plain(x)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected one channel ([B, 1, H, W]), got shape {tuple(x.shape)}")
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name}: expected [B, 1, H, W] or [B, H, W], got shape {tuple(x.shape)}")
    return x


def _binary(
    pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor], threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The foreground masks ``[B, 1, H, W]`` (bool): ``pred > threshold`` and ``target > 0.5``, on ``pred``'s device."""
    p = _as_batch(pred, "pred")
    t = _as_batch(target, "target").to(p.device)
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    return (p > threshold).unsqueeze(1), (t > 0.5).unsqueeze(1)


def per_image_dice(
    pred: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor | Sequence[torch.Tensor],
    threshold: float = 0.5,
) -> torch.Tensor:
    """Dice of each image.

    Args:
        pred: probabilities, ``[B, 1, H, W]`` or ``[B, H, W]`` (or a list of ``[1, H, W]``); a pixel is foreground
            when strictly greater than ``threshold`` (so a probability of exactly 0.5 is background).
        target: the ground truth, same shape; values ``> 0.5`` are foreground (0/1 and 0/255 masks both work).
        threshold: binarisation threshold of ``pred``.

    Returns:
        Float tensor ``[B]`` on ``pred``'s device; an empty ground truth scores 1 for an empty prediction, else 0.
    """
    # monai.metrics.compute_dice is DiceMetric's per-image computation; ignore_empty=False is the empty-mask rule
    p, t = _binary(pred, target, threshold)
    return compute_dice(p, t, include_background=True, ignore_empty=False)[:, 0]


def mean_dice(
    pred: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor | Sequence[torch.Tensor],
    threshold: float = 0.5,
) -> float:
    """Mean over images of :func:`per_image_dice` (the protocol's reported number)."""
    return float(per_image_dice(pred, target, threshold).mean())


def batch_mean_dice(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """MGCA's reported Dice: the mean over batches of each batch's float32 mean Dice.

    Args:
        batches: per batch, the per-image Dice ``[B]`` (:func:`per_image_dice`) and whether each image's ground truth
            is non-empty ``[B]`` (MGCA's ``get_dice`` puts those images first before taking the mean).

    Returns:
        ``np.array([batch means]).mean()``, as MGCA's ``shared_epoch_end``; NaN without any batch.
    """
    means = []
    for dice, positive in batches:
        dice, positive = torch.as_tensor(dice).flatten().to(torch.float32), torch.as_tensor(positive).flatten().bool()
        means.append(torch.mean(torch.cat([dice[positive], dice[~positive]])).item())
    return float(np.array(means).mean()) if means else float("nan")


def batched_from_engine(keys: Sequence[str] = ("pred", "label")) -> Callable[[Any], tuple[torch.Tensor, ...]]:
    """An ``output_transform`` for ``IgniteMetricHandler``: the iteration's decollated items as batch tensors.

    ignite splits a pair of lists (what ``monai.handlers.from_engine`` returns) into one metric update per image, so
    the metric never sees the batches; stacked, one update is one batch, which the mgca protocol's batch means need.
    The per-image values, hence the standard protocol's mean, are the same either way.
    """

    def transform(output: Any) -> tuple[torch.Tensor, ...]:
        rows = output if isinstance(output, (list, tuple)) else [output]
        return tuple(torch.stack([torch.as_tensor(row[k]) for row in rows]) for k in keys)

    return transform


class PerImageDiceMetric(DiceMetric):
    """MONAI's ``DiceMetric`` per image (``include_background=True, ignore_empty=False, reduction="none"``) on
    probabilities binarised at ``threshold``, collected over batches; ``aggregate()`` is the mean over images.

    Use it in a ``SupervisedEvaluator`` through ``monai.handlers.IgniteMetricHandler(metric_fn=PerImageDiceMetric(),
    output_transform=monai.handlers.from_engine(["pred", "label"]))``: MONAI hands it decollated lists of
    ``[1, H, W]`` tensors, which the base class batches one image at a time. Predictions must be probabilities
    (apply the sigmoid before), not logits. Under DDP the buffers are gathered across ranks by the base class.

    With ``protocol="mgca"`` ``aggregate()`` is :func:`batch_mean_dice` over the calls, each taken as one batch; the
    per-image buffer is the same. Give it whole batches: ``output_transform=mflag_monai.metrics.batched_from_engine()``
    (with ``from_engine`` ignite makes one call per image, and every "batch" would be one image). That mode needs the
    batches of one process: under DDP the gathered buffer no longer matches them, and ``aggregate()`` raises.

    Args:
        threshold: binarisation threshold of the predictions (foreground is ``> threshold``).
        protocol: ``"standard"`` (mean over images) or ``"mgca"`` (mean of batch means, for comparison with papers).
    """

    def __init__(self, threshold: float = 0.5, protocol: str = "standard") -> None:
        super().__init__(include_background=True, reduction="none", ignore_empty=False)
        self.threshold = threshold
        self.protocol = check_protocol(protocol)
        self.positive: list[torch.Tensor] = []  # per batch (mgca protocol): ground truth non-empty, per image

    def reset(self) -> None:
        """Forget the collected images (and batches)."""
        super().reset()
        self.positive = []

    def __call__(  # type: ignore[override]
        self,
        y_pred: torch.Tensor | Sequence[torch.Tensor],
        y: torch.Tensor | Sequence[torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Add one batch (its per-image Dice goes to the buffer; the mgca protocol also remembers the batch)."""
        ret = super().__call__(y_pred, y, **kwargs)
        if self.protocol == "mgca" and y is not None:
            self.positive.append((_as_batch(y, "target") > 0.5).flatten(1).any(1).cpu())
        return ret

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Per-image Dice of one batch as a ``[B, 1]`` tensor (batch-first, as MONAI's buffers expect)."""
        if y is None:
            raise ValueError("PerImageDiceMetric needs the ground truth y")
        return super()._compute_tensor(*_binary(y_pred, y, self.threshold))

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean Dice over every image seen since the last ``reset()`` (a 0-d tensor; NaN before any image); under the
        mgca protocol the mean of the batch means."""
        buffer = self.get_buffer()
        if buffer is None or buffer.numel() == 0:
            return torch.tensor(float("nan"))
        if self.protocol == "mgca":
            sizes = [len(p) for p in self.positive]
            if sum(sizes) != buffer.numel():
                raise RuntimeError(
                    f"the mgca Dice averages batch means: {buffer.numel()} images in the buffer but {sum(sizes)} in the"
                    " batches this metric saw (a buffer gathered across processes, or calls without ground truth)"
                )
            values = buffer.flatten().split(sizes)
            return torch.tensor(batch_mean_dice(list(zip(values, self.positive))), dtype=torch.float64)
        return buffer.float().mean()
