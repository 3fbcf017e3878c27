"""The validation loss metric and the selection settings (select_on) of the downstream bundles."""

from __future__ import annotations

import pytest
import torch
from ignite.exceptions import NotComputableError

from mflag_monai.bundle import selection, selection_comparison, selection_score
from mflag_monai.metrics import ValidationLoss
from mflag_monai.utils.errors import InputError


def _items(logits: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    return [{"logits": p, "target": t, "pred": p.sigmoid()} for p, t in zip(logits, labels)]


def test_mean_over_images_of_a_per_image_loss_is_the_loss_of_the_whole_split() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 5), (torch.rand(7, 5) > 0.5).float()
    loss = torch.nn.BCEWithLogitsLoss()
    metric = ValidationLoss(loss_fn=loss)
    metric.reset()
    metric.update(_items(logits[:4], labels[:4]))  # batches of unequal size weigh by their images
    metric.update(_items(logits[4:], labels[4:]))
    assert metric.compute() == pytest.approx(float(loss(logits, labels)), rel=1e-6)


def test_class_indices_for_cross_entropy() -> None:
    logits, labels = torch.randn(6, 3), torch.tensor([0, 2, 1, 1, 0, 2])
    metric = ValidationLoss(loss_fn=torch.nn.CrossEntropyLoss())
    metric.reset()
    metric.update(_items(logits, labels))
    assert metric.compute() == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-6)


def test_precomputed_batch_losses_and_nothing_to_average() -> None:
    metric = ValidationLoss()
    metric.reset()
    with pytest.raises(NotComputableError):
        metric.compute()
    metric.update([{"loss": 1.0}, {"loss": 1.0}, {"loss": 1.0}])  # a batch of 3 with loss 1
    metric.update([{"loss": 4.0}])
    assert metric.compute() == pytest.approx(7.0 / 4)
    with pytest.raises(KeyError, match="'loss'"):
        metric.update([{"pred": torch.zeros(1)}])


def test_selection_follows_select_on() -> None:
    task, loss = {"val_auroc": "auroc"}, {"val_loss": "loss"}
    assert selection(task, loss, "metric") == (task, loss)
    assert selection(task, loss, "val_loss") == (loss, task)
    assert selection_comparison("metric")(0.8, 0.7) and not selection_comparison("val_loss")(0.8, 0.7)

    class State:
        metrics = {"val_auroc": 0.8, "val_loss": 0.3}

    class Engine:
        state = State()

    assert selection_score("metric", "val_auroc")(Engine()) == 0.8
    assert selection_score("val_loss", "val_auroc")(Engine()) == -0.3  # early stopping wants higher = better
    assert selection_score("metric", {"val_auroc": object()})(Engine()) == 0.8  # the bundles pass their key_metric
    with pytest.raises(InputError, match="--select_on"):
        selection(task, loss, "loss")
