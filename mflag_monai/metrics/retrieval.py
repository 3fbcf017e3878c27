"""Image–report retrieval metrics: recall@k both ways, with identical report texts counted as matches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["recall_at_k", "report_match", "retrieval_recall"]


def recall_at_k(similarity: torch.Tensor, match: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Share of queries (rows) with a matching item (``match[i, j]``) among their top-k by ``similarity``."""
    order = similarity.argsort(dim=1, descending=True)
    hits = torch.gather(match.float(), 1, order)
    return {f"R@{k}": float((hits[:, :k].sum(1) > 0).float().mean()) for k in ks}


def report_match(texts: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """``(distinct reports, match [N, D])``: ``match[i, j]`` when image ``i``'s report is distinct report ``j``.

    Identical texts are one report: an image's report is retrieved whichever of its copies ranks first.
    """
    distinct = list(dict.fromkeys(texts))
    index = {t: i for i, t in enumerate(distinct)}
    match = torch.zeros(len(texts), len(distinct), dtype=torch.bool)
    match[torch.arange(len(texts)), torch.tensor([index[t] for t in texts], dtype=torch.long)] = True
    return distinct, match


def retrieval_recall(
    similarity: torch.Tensor, match: torch.Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, dict[str, float]]:
    """``{"image_to_text": recall@k, "text_to_image": recall@k}`` of an image × report ``similarity`` matrix."""
    return {
        "image_to_text": recall_at_k(similarity, match, ks),
        "text_to_image": recall_at_k(similarity.T, match.T, ks),
    }
