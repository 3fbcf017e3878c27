"""The training loss on the validation split, as an ignite metric (MGCA selects checkpoints and stops on it).

The value is the mean over validation images of the per-batch loss, each batch weighted by its number of images (what
Lightning logs as ``val_loss`` with ``on_epoch=True``). For a loss that is a per-image mean (cross-entropy) this is the
loss of the whole split; for a batch-level loss (soft Dice) it is the average over the batches, as in MGCA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from monai.data import MetaTensor

__all__ = ["ValidationLoss"]


def _plain(x: Any) -> torch.Tensor:
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


class ValidationLoss(Metric):
    """Mean validation loss over images, from the evaluator's per-image outputs.

    Either ``loss_fn`` is given and applied to each batch's stacked ``pred_key`` / ``label_key`` items (the network's
    raw output and the label, copied before postprocessing turns them into probabilities and one-hot labels), or the
    items already carry their batch's loss under ``loss_key`` (a detector computes its own losses).

    Args:
        loss_fn: the training loss, ``loss_fn(pred, label)``; ``None`` reads ``loss_key``.
        pred_key, label_key: keys of the raw network output and the label in each item.
        loss_key: key of a precomputed batch loss in each item (with ``loss_fn=None``).
        output_transform, device: as :class:`ignite.metrics.Metric`.
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        pred_key: str = "logits",
        label_key: str = "target",
        loss_key: str = "loss",
        output_transform: Callable[[Any], Any] = lambda output: output,
        device: str | torch.device = "cpu",
    ) -> None:
        self.loss_fn, self.pred_key, self.label_key, self.loss_key = loss_fn, pred_key, label_key, loss_key
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._count = torch.tensor(0, dtype=torch.int64, device=self._device)

    @reinit__is_reduced
    def update(self, output: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        items = [output] if isinstance(output, Mapping) else list(output)
        if not items:
            return
        if self.loss_fn is None:
            if any(self.loss_key not in item for item in items):
                raise KeyError(f"validation loss: the evaluator's outputs carry no {self.loss_key!r}")
            total = sum(float(item[self.loss_key]) for item in items)
        else:
            pred = torch.stack([_plain(item[self.pred_key]) for item in items])
            label = torch.stack([_plain(item[self.label_key]) for item in items])
            with torch.no_grad():
                total = float(self.loss_fn(pred, label)) * len(items)
        self._sum += total
        self._count += len(items)

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        if int(self._count) == 0:
            raise NotComputableError("the validation loss needs at least one validation image")
        return float(self._sum / self._count)
