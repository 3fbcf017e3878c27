"""Per-image Dice (docs/method.md#segmentation): hand-computed cases, the empty-mask rule, seeded cases against the rule
written in numpy, the MONAI evaluator path, and the mgca protocol (MGCA's mean of batch means) against MGCA's own
code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mflag_monai.metrics import PerImageDiceMetric, batch_mean_dice, batched_from_engine, mean_dice, per_image_dice


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


# ------------------------------------------------------------------------------------------------ seeded cases


def dice_rule(pred: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The per-image Dice of docs/method.md#segmentation in float64: foreground where pred > threshold and target > 0.5;
    an empty ground truth scores 1 if the prediction is empty, else 0."""
    out = []
    for p, t in zip(pred.reshape(len(pred), -1) > threshold, target.reshape(len(target), -1) > 0.5):
        if not t.any():
            out.append(0.0 if p.any() else 1.0)
        else:
            out.append(2.0 * np.sum(p & t) / (np.sum(p) + np.sum(t)))
    return np.asarray(out)


def random_batch(rng: np.random.Generator, size: int, side: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` images ``[1, side, side]``: probabilities (some exactly 0.5, some all below the threshold) and masks
    (0/1 or 0/255, a third of them empty)."""
    pred = rng.random((size, 1, side, side)).astype(np.float32) * rng.choice([0.4, 1.0, 1.2], size=(size, 1, 1, 1))
    pred[rng.random(pred.shape) < 0.05] = 0.5
    target = (rng.random((size, 1, side, side)) < rng.random((size, 1, 1, 1)) * 0.6).astype(np.float32)
    target[rng.random(size) < 1 / 3] = 0
    if rng.random() < 0.5:
        target *= 255
    return torch.from_numpy(np.clip(pred, 0, 1)), torch.from_numpy(target)


def test_dice_equals_the_per_image_rule_on_seeded_cases() -> None:
    """The issue's acceptance: per-image Dice equals the protocol's rule to 1e-7."""
    rng = np.random.default_rng(20)
    worst = 0.0
    for _ in range(200):
        pred, target = random_batch(rng, int(rng.integers(1, 9)))
        expected = dice_rule(pred.numpy(), target.numpy())
        got = per_image_dice(pred, target).double().numpy()
        worst = max(worst, float(np.max(np.abs(got - expected))))
        assert abs(mean_dice(pred, target) - float(np.mean(expected))) <= 1e-7
    assert worst <= 1e-7


# ------------------------------------------------------------------------------------------------ mgca protocol


def mgca_get_dice(probability: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> float:
    """MGCA's ``SSLSegmenter.get_dice`` (released code, ``mgca/models/ssl_segmenter.py``), unchanged."""
    batch_size = len(truth)
    with torch.no_grad():
        probability = probability.view(batch_size, -1)
        truth = truth.view(batch_size, -1)
        assert probability.shape == truth.shape

        p = (probability > threshold).float()
        t = (truth > 0.5).float()

        t_sum = t.sum(-1)
        p_sum = p.sum(-1)
        neg_index = torch.nonzero(t_sum == 0)
        pos_index = torch.nonzero(t_sum >= 1)

        dice_neg = (p_sum == 0).float()
        dice_pos = 2 * (p * t).sum(-1) / ((p + t).sum(-1))

        dice_neg = dice_neg[neg_index]
        dice_pos = dice_pos[pos_index]
        dice = torch.cat([dice_pos, dice_neg])

    return torch.mean(dice).detach().item()


def test_mgca_mean_of_batch_means_equals_mgca_code() -> None:
    """MGCA's test epoch: get_dice per batch, then np.array(batch values).mean(); the last batch is short."""
    rng = np.random.default_rng(21)
    differs = 0
    for _ in range(40):
        sizes = [8] * int(rng.integers(1, 4)) + [int(rng.integers(1, 8))]
        batches = [random_batch(rng, n) for n in sizes]
        expected = float(np.array([mgca_get_dice(p[:, 0], t[:, 0]) for p, t in batches]).mean())
        metric = PerImageDiceMetric(protocol="mgca")
        for p, t in batches:
            metric([i for i in p], [i for i in t])  # decollated, as the evaluator hands them over
        assert abs(metric.aggregate().item() - expected) <= 1e-12
        standard = float(np.mean(np.concatenate([dice_rule(p.numpy(), t.numpy()) for p, t in batches])))
        differs += abs(expected - standard) > 1e-6
        per_image = [(per_image_dice(p, t), (t > 0.5).flatten(1).any(1)) for p, t in batches]
        assert abs(batch_mean_dice(per_image) - expected) <= 1e-12
    assert differs > 20  # a short last batch moves the mean


@pytest.mark.parametrize("protocol", ["standard", "mgca"])
def test_protocols_in_a_supervised_evaluator(protocol: str) -> None:
    """Batches of 3 over the 4 hand-made images, whole batches per update (what the bundle configures): the mean over
    images, or MGCA's mean of the batch means (2/3 + 1 + 0) / 3 and 0."""
    from monai.engines import SupervisedEvaluator
    from monai.handlers import IgniteMetricHandler

    pred, target = batch()
    data = [{"image": pred[i], "label": target[i]} for i in range(4)]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=torch.utils.data.DataLoader(data, batch_size=3),
        network=torch.nn.Identity(),
        key_val_metric={
            "val_dice": IgniteMetricHandler(
                metric_fn=PerImageDiceMetric(protocol=protocol), output_transform=batched_from_engine(["pred", "label"])
            )
        },
    )
    evaluator.run()
    expected = sum(EXPECTED) / 4 if protocol == "standard" else ((2 / 3 + 1 + 0) / 3 + 0) / 2
    assert evaluator.state.metrics["val_dice"] == pytest.approx(expected)


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="protocol"):
        PerImageDiceMetric(protocol="batch")


# ------------------------------------------------------------------------------------------------ MONAI's DiceMetric


def reference_per_image_dice(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The package's hand-written per-image Dice before it delegated to MONAI's ``DiceMetric`` (``[B, 1, H, W]`` or
    ``[B, H, W]`` in, float32 ``[B]`` out), kept as the reference the library must reproduce bit for bit."""
    p = (pred.reshape(len(pred), -1) > threshold).flatten(1)
    t = (target.reshape(len(target), -1) > 0.5).flatten(1)
    intersection = (p & t).sum(1).float()
    total = p.sum(1).float() + t.sum(1).float()
    return torch.where(total > 0, 2.0 * intersection / total.clamp_min(1.0), torch.ones_like(total))


def monai_dice(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """MONAI's ``DiceMetric`` on the binarised masks, per image (``[B]``)."""
    from monai.metrics import DiceMetric

    metric = DiceMetric(include_background=True, ignore_empty=False, reduction="none")
    p = (pred.reshape(len(pred), 1, *pred.shape[-2:]) > threshold).float()
    t = (target.reshape(len(target), 1, *target.shape[-2:]) > 0.5).float()
    return metric(p, t)[:, 0]


def edge_batches() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Named edge cases: all empty, empty truth with/without prediction, ties at the threshold, one pixel, one image,
    full masks, 0/255 truths, a probability one float32 step above 0.5."""
    above = torch.nextafter(torch.tensor(0.5), torch.tensor(1.0)).item()
    one = torch.ones(1, 1, 3, 3)
    return [
        ("all empty", torch.zeros(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)),
        ("empty truth, prediction", torch.full((2, 1, 4, 4), 0.9), torch.zeros(2, 1, 4, 4)),
        ("truth, no prediction", torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)),
        ("ties at 0.5", torch.full((2, 1, 4, 4), 0.5), torch.ones(2, 1, 4, 4)),
        ("one float32 step above 0.5", torch.full((1, 1, 2, 2), above), torch.ones(1, 1, 2, 2)),
        ("one pixel", torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1)),
        ("one pixel missed", torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)),
        ("full masks", one, one),
        ("0/255 truth", torch.full((1, 1, 3, 3), 0.7), 255 * one),
        ("hand-made", *batch()),
    ]


def test_monai_dice_metric_equals_the_hand_written_dice_exactly() -> None:
    """``DiceMetric(include_background=True, ignore_empty=False, reduction="none")`` on the masks binarised at the
    threshold gives the same float32 per-image values as the rule written out, on edge cases and seeded batches (the
    counts are integers, and both divide ``2 |P ∩ T|`` by ``|P| + |T|`` once in float32)."""
    for name, pred, target in edge_batches():
        expected = reference_per_image_dice(pred, target)
        assert torch.equal(monai_dice(pred, target), expected), name
        assert torch.equal(per_image_dice(pred, target), expected), name
    rng = np.random.default_rng(22)
    for _ in range(300):
        pred, target = random_batch(rng, int(rng.integers(1, 9)), side=int(rng.integers(1, 40)))
        threshold = float(rng.choice([0.5, 0.3, 0.9]))
        expected = reference_per_image_dice(pred, target, threshold)
        assert torch.equal(monai_dice(pred, target, threshold), expected)
        got = per_image_dice(pred, target, threshold)
        assert got.dtype == torch.float32 and torch.equal(got, expected)
        assert torch.equal(per_image_dice(list(pred), list(target), threshold), expected)  # decollated items


@pytest.mark.parametrize("protocol", ["standard", "mgca"])
def test_metric_buffer_equals_the_hand_written_dice_exactly(protocol: str) -> None:
    """The cumulative metric's buffer and aggregate, batch by batch, against the rule written out."""
    rng = np.random.default_rng(23)
    metric = PerImageDiceMetric(protocol=protocol)
    batches = [random_batch(rng, n) for n in (8, 8, 3, 1)]
    for pred, target in batches:
        metric(pred, target)
    expected = torch.cat([reference_per_image_dice(p, t) for p, t in batches])
    assert torch.equal(metric.get_buffer().flatten(), expected)
    if protocol == "standard":
        assert torch.equal(metric.aggregate(), expected.mean())
    else:
        positive = [(t > 0.5).flatten(1).any(1) for _, t in batches]
        means = [torch.cat([d[k], d[~k]]).mean().item() for d, k in zip(expected.split([8, 8, 3, 1]), positive)]
        assert metric.aggregate().item() == float(np.array(means).mean())
