"""Per-image Dice (SPEC §2): hand-computed cases, the empty-mask rule, and the MONAI evaluator path."""

from __future__ import annotations

import math

import pytest
import torch

from mflag_monai.metrics import PerImageDiceMetric, mean_dice, per_image_dice


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four 4x4 images: overlap, both empty, empty truth with a prediction, truth with no prediction."""
    pred = torch.zeros(4, 1, 4, 4)
    target = torch.zeros(4, 1, 4, 4)
    pred[0, 0, 0, :3] = 0.9  # 3 predicted pixels
    target[0, 0, 0, 1:] = 1  # 3 true pixels, 2 shared → 2*2/6
    pred[2, 0, 3, 3] = 0.7  # empty truth, one predicted pixel → 0
    target[3, 0, 1:3, 1:3] = 1  # 4 true pixels, nothing predicted → 0
    return pred, target


EXPECTED = [2 / 3, 1.0, 0.0, 0.0]


def test_hand_computed_cases() -> None:
    pred, target = batch()
    torch.testing.assert_close(per_image_dice(pred, target), torch.tensor(EXPECTED))
    assert mean_dice(pred, target) == pytest.approx(sum(EXPECTED) / 4)
    # the same without the channel dimension
    torch.testing.assert_close(per_image_dice(pred[:, 0], target[:, 0]), torch.tensor(EXPECTED))


def test_threshold_is_strict() -> None:
    pred = torch.full((1, 1, 2, 2), 0.5)
    target = torch.ones(1, 1, 2, 2)
    assert per_image_dice(pred, target).item() == 0.0  # 0.5 is not > 0.5
    assert per_image_dice(pred, target, threshold=0.4).item() == 1.0
    assert per_image_dice(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0  # empty rule
    assert per_image_dice(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)).item() == 0.0
    assert per_image_dice(pred, 255 * target, threshold=0.4).item() == 1.0  # 0/255 truths work


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        per_image_dice(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))  # two channels
    with pytest.raises(ValueError):
        per_image_dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


def test_cumulative_metric_over_batches_and_lists() -> None:
    pred, target = batch()
    metric = PerImageDiceMetric()
    assert math.isnan(metric.aggregate().item())
    metric(pred[:2], target[:2])  # a batch
    metric([p for p in pred[2:]], [t for t in target[2:]])  # decollated [1, H, W] items
    assert metric.aggregate().item() == pytest.approx(sum(EXPECTED) / 4)  # mean over images, not batches
    torch.testing.assert_close(metric.get_buffer().flatten(), torch.tensor(EXPECTED))
    metric.reset()
    metric(pred[:1], target[:1])
    assert metric.aggregate().item() == pytest.approx(2 / 3)


def test_in_a_supervised_evaluator() -> None:
    from monai.engines import SupervisedEvaluator
    from monai.handlers import IgniteMetricHandler, from_engine

    pred, target = batch()
    # The "network" returns the stored prediction for its input: the image *is* the prediction here.
    data = [{"image": pred[i], "label": target[i]} for i in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=3)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Identity(),
        key_val_metric={
            "val_dice": IgniteMetricHandler(
                metric_fn=PerImageDiceMetric(), output_transform=from_engine(["pred", "label"]), save_details=True
            )
        },
    )
    evaluator.run()
    assert evaluator.state.metrics["val_dice"] == pytest.approx(sum(EXPECTED) / 4)
