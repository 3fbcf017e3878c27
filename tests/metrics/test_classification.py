"""Classification metrics: AUROC per label and their mean against the definition (and scikit-learn where it
installs) on seeded cases, no precision loss in the report, and the mgca protocol (MGCA's torchmetrics 0.8.2 AUROC)
against a re-derivation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mflag_monai.handlers.reports import ClassificationReportWriter
from mflag_monai.metrics import MeanAUROCMetric, classification_report, mean_auroc, per_label_auroc


def auroc_reference(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC from its definition: the probability that a positive scores above a negative, ties counting 1/2
    (pairs counted exactly in integers, one division); NaN without both classes."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if not len(pos) or not len(neg):
        return math.nan
    twice = int(2 * (pos[:, None] > neg[None, :]).sum() + (pos[:, None] == neg[None, :]).sum())
    return twice / (2 * len(pos) * len(neg))


def mgca_auroc_reference(scores: np.ndarray, labels: np.ndarray) -> float:
    """One label's AUROC as torchmetrics 0.8.2 computed it in MGCA's code, re-derived in numpy float32: the ROC
    curve's points at each distinct score (highest first) from float32 counts, a zero rate curve where a class is
    missing (so AUROC 0), the trapezoidal area."""
    s = scores.astype(np.float32)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], (labels[order] > 0.5).astype(np.float32)
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.r_[np.float32(0), np.cumsum(y, dtype=np.float32)[ends]]
    fps = np.r_[np.float32(0), (1 + ends - tps[1:]).astype(np.float32)]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.zeros_like(fps)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.zeros_like(tps)
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / np.float32(2), dtype=np.float32))


def random_case(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, C]`` float32 probabilities (tied in half the cases) and 0/1 labels, some labels with one class."""
    n, c = int(rng.integers(2, 60)), int(rng.integers(1, 7))
    probs = rng.random((n, c))
    if rng.random() < 0.5:
        probs = np.round(probs, 1)
    labels = (rng.random((n, c)) < rng.random(c)).astype(np.float32)
    if rng.random() < 0.3:
        labels[:, int(rng.integers(c))] = float(rng.integers(0, 2))
    return torch.tensor(probs, dtype=torch.float32), torch.tensor(labels)


CASES = [random_case(np.random.default_rng(100 + i)) for i in range(400)]


def test_mean_auroc_equals_the_definition_on_seeded_cases() -> None:
    """The issue's acceptance: mean AUROC equals the reference to 1e-12 (labels with one class left out)."""
    worst, single = 0.0, 0
    for n, (probs, labels) in enumerate(CASES):
        names = [f"l{c}" for c in range(probs.shape[1])]
        report = classification_report(probs, labels, names)
        expected = [auroc_reference(probs[:, c].double().numpy(), labels[:, c].numpy()) for c in range(len(names))]
        single += any(math.isnan(e) for e in expected)
        for got, want in zip(report["auroc"].values(), expected):
            assert (math.isnan(got) and math.isnan(want)) or abs(got - want) <= 1e-12, (n, got, want)
        defined = [e for e in expected if not math.isnan(e)]
        mean = report["mean_auroc"]
        if defined:
            assert abs(mean - float(np.mean(defined))) <= 1e-12, n
            worst = max(worst, abs(mean - float(np.mean(defined))))
        else:
            assert math.isnan(mean), n
        metric = MeanAUROCMetric()
        metric(probs, labels)
        assert metric.aggregate() == mean or (math.isnan(mean) and math.isnan(metric.aggregate()))
    assert single > 50  # the single-class rule is exercised
    assert worst <= 1e-12


def test_mean_auroc_equals_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    for n, (probs, labels) in enumerate(CASES):
        y = labels.numpy()
        defined = [c for c in range(y.shape[1]) if y[:, c].min() != y[:, c].max()]
        if not defined:
            continue
        expected = float(np.mean([metrics.roc_auc_score(y[:, c], probs[:, c].double().numpy()) for c in defined]))
        report = classification_report(probs, labels, [str(c) for c in range(y.shape[1])])
        assert abs(report["mean_auroc"] - expected) <= 1e-12, n


def test_float64_scores_keep_their_precision() -> None:
    """Scores 1e-10 apart are one value in float32: a cast would turn a perfect ranking into ties (AUROC 0.5)."""
    probs = torch.tensor([[0.5 + k * 1e-10] for k in range(6)], dtype=torch.float64)
    labels = torch.tensor([[0.0], [0.0], [0.0], [1.0], [1.0], [1.0]])
    assert torch.unique(probs.float()).numel() == 1
    assert classification_report(probs, labels, ["x"])["mean_auroc"] == 1.0
    # the report writer of the evaluate workflow keeps them too
    writer = ClassificationReportWriter(filepath="unused.json", names=["x"])
    engine = SimpleNamespace(state=SimpleNamespace(output=[{"pred": p, "label": y} for p, y in zip(probs, labels)]))
    writer.collect(engine)
    assert classification_report(torch.stack(writer.probs), torch.stack(writer.labels), ["x"])["mean_auroc"] == 1.0


def test_multi_class_accuracy() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    labels = torch.eye(3)[[0, 1, 1, 2]]
    for protocol in ("standard", "mgca"):
        assert classification_report(probs, labels, ["a", "b", "c"], "multi-class", protocol)["accuracy"] == 0.5


# ------------------------------------------------------------------------------------------------ mgca protocol


def test_mgca_scores_a_single_class_label_zero_and_averages_it_in() -> None:
    probs = torch.tensor([[0.1, 0.3], [0.4, 0.5], [0.35, 0.2], [0.8, 0.9]])
    labels = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # label 1 has no positive
    standard = classification_report(probs, labels, ["a", "b"])
    mgca = classification_report(probs, labels, ["a", "b"], protocol="mgca")
    assert standard["auroc"]["a"] == 0.75 and math.isnan(standard["auroc"]["b"]) and standard["mean_auroc"] == 0.75
    assert mgca["auroc"] == {"a": 0.75, "b": 0.0} and mgca["mean_auroc"] == 0.375 and mgca["protocol"] == "mgca"
    metric = MeanAUROCMetric(protocol="mgca")
    metric(probs, labels)
    assert metric.aggregate() == 0.375
    # a label without negatives scores 0 too
    assert per_label_auroc(probs[:, :1], torch.ones(4, 1), "mgca") == [0.0]


def test_mgca_equals_the_rederivation_on_seeded_cases() -> None:
    differs = 0
    for n, (probs, labels) in enumerate(CASES):
        got = per_label_auroc(probs, labels, "mgca")
        expected = [mgca_auroc_reference(probs[:, c].numpy(), labels[:, c].numpy()) for c in range(probs.shape[1])]
        assert np.allclose(got, expected, rtol=0, atol=1e-6), (n, got, expected)
        mean = mean_auroc(got, "mgca")
        assert abs(mean - float(np.mean(np.asarray(expected, dtype=np.float32)))) <= 1e-6, n
        standard = classification_report(probs, labels, [str(c) for c in range(probs.shape[1])])["mean_auroc"]
        differs += math.isnan(standard) or abs(mean - standard) > 1e-6
    assert differs > 50


def test_mgca_equals_torchmetrics_0_8_where_installed() -> None:
    """MGCA's ``AUROC(num_classes=C)`` itself, where ``torchmetrics`` 0.8.x is installed (MGCA pinned 0.8.2)."""
    torchmetrics = pytest.importorskip("torchmetrics")
    if not torchmetrics.__version__.startswith("0.8."):
        pytest.skip(f"torchmetrics {torchmetrics.__version__}: MGCA's code used 0.8.2")
    import warnings

    for n, (probs, labels) in enumerate(CASES):
        if probs.shape[1] < 2:  # MGCA's multi-label tasks
            continue
        metric = torchmetrics.AUROC(num_classes=probs.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric.update(probs, labels.long())
            expected = float(metric.compute())
        assert (
            classification_report(probs, labels, list("abcdef")[: probs.shape[1]], protocol="mgca")["mean_auroc"]
            == expected
        ), n


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="protocol"):
        classification_report(torch.rand(4, 1), torch.ones(4, 1), ["x"], protocol="torchmetrics")
    with pytest.raises(ValueError, match="protocol"):
        MeanAUROCMetric(protocol="")
