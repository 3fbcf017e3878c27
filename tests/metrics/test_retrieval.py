"""mflag_monai.metrics.retrieval: recall@k by hand, and identical report texts counted as one report."""

from __future__ import annotations

import pytest
import torch

from mflag_monai.metrics.retrieval import recall_at_k, report_match, retrieval_recall


def test_recall_at_k_by_hand() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.8], [0.5, 0.6, 0.4]])
    match = torch.eye(3, dtype=torch.bool)
    r = recall_at_k(sim, match, ks=(1, 2))
    assert r["R@1"] == pytest.approx(1 / 3)  # only row 0 ranks its match first
    assert r["R@2"] == pytest.approx(1 / 3)  # rows 1 and 2 rank their match third
    assert recall_at_k(sim, match, ks=(3,))["R@3"] == 1.0


def test_identical_reports_are_one_match() -> None:
    distinct, match = report_match(["a", "b", "a"])
    assert distinct == ["a", "b"]
    assert match.tolist() == [[True, False], [False, True], [True, False]]
    sim = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.8, 0.2]])  # image 1 (report "b") ranks "a" first: a miss
    recall = retrieval_recall(sim, match, ks=(1,))
    assert recall["image_to_text"]["R@1"] == pytest.approx(2 / 3)
    assert recall["text_to_image"]["R@1"] == 1.0  # "a" finds image 0, "b" finds image 1
