"""Latent-geometry diagnostics of a pre-trained model: effective rank, singular-value spectra, alignment, uniformity.

M-FLAG's orthogonality loss is meant to keep the encoder's latent space from collapsing onto a few directions. These
functions measure that on a batch of features:

- **effective rank** (Roy & Vetterli, 2007): ``exp(H(p))`` with ``p_k = σ_k / Σ σ`` the normalised singular values of
  the centred ``[N, D]`` feature matrix. It lies in ``[1, min(N - 1, D)]``: 1 when all features vary along one
  direction (collapse), ``min(N - 1, D)`` when they spread evenly over every direction the sample allows.
- **alignment** (Wang & Isola, 2020): ``E ||x̂ - ŷ||^α`` over paired L2-normalised image/text projections; 0 when
  every image lands on its report, 4 (α = 2) when they are antipodal.
- **uniformity** (Wang & Isola, 2020): ``log E exp(-t ||x̂ - x̂'||²)`` over distinct pairs; lower (more negative) is
  more uniform on the sphere, 0 when every point coincides.

Everything is computed in float64 on the CPU: the spectra span orders of magnitude and the sample is small.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["effective_rank", "singular_value_spectrum", "alignment", "uniformity", "latent_geometry"]


def _matrix(features: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(features).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"Expected an [N, D] feature matrix, got shape {tuple(x.shape)}.")
    return x


def singular_value_spectrum(features: torch.Tensor, normalize: bool = True, center: bool = True) -> torch.Tensor:
    """Singular values of the ``[N, D]`` feature matrix, largest first (``min(N, D)`` values, float64).

    Args:
        features: ``[N, D]`` (one row per sample).
        normalize: divide by their sum, so the spectrum is the distribution ``p`` whose entropy gives the effective
            rank, and spectra of models with different feature scales are comparable.
        center: subtract the mean feature first, so the spectrum describes the spread around the mean rather than
            the mean itself (post-ReLU encoder features share a large positive mean).
    """
    x = _matrix(features)
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if normalize:
        total = s.sum()
        s = s / total if total > 0 else s
    return s


def effective_rank(features: torch.Tensor, center: bool = True) -> float:
    """Roy & Vetterli's effective rank: ``exp(-Σ p_k log p_k)``, ``p_k = σ_k / Σ σ`` of the centred features.

    Every singular value counts, as in the definition: float32 rounding of a rank-1 matrix adds ~1e-5. Returns 0.0 for
    a matrix with no spread at all (identical rows, e.g. a single sample), where the effective rank is undefined.
    """
    s = singular_value_spectrum(features, normalize=False, center=center)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]  # 0 log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2, normalize: bool = True) -> float:
    """Wang & Isola's alignment ``E_i ||x̂_i - ŷ_i||^α`` of paired rows of ``x`` and ``y`` (``[N, D]`` each).

    Args:
        normalize: L2-normalise the rows first (the definition is on the unit sphere); turn off for inputs that are
            normalised already.
    """
    x, y = _matrix(x), _matrix(y)
    if x.shape != y.shape:
        raise ValueError(f"alignment needs paired rows of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return float((x - y).norm(dim=-1).pow(alpha).mean())


def uniformity(x: torch.Tensor, t: float = 2, normalize: bool = True) -> float:
    """Wang & Isola's uniformity ``log E_{i<j} exp(-t ||x̂_i - x̂_j||²)`` over the distinct pairs of rows of ``x``.

    Args:
        normalize: L2-normalise the rows first (the definition is on the unit sphere).

    Raises:
        ValueError: fewer than 2 rows (no pair).
    """
    x = _matrix(x)
    if x.shape[0] < 2:
        raise ValueError("uniformity needs at least 2 samples.")
    if normalize:
        x = F.normalize(x, dim=-1)
    exponents = -t * torch.pdist(x).pow(2)
    # log-mean-exp, stable for large t
    return float(torch.logsumexp(exponents, dim=0) - math.log(exponents.numel()))


def latent_geometry(
    image_feature: torch.Tensor, image_proj: torch.Tensor, text_proj: torch.Tensor
) -> dict[str, float | dict[str, list[float]]]:
    """All diagnostics of one sample of ``N`` image–report pairs.

    Args:
        image_feature: ``[N, F]`` raw encoder features (the orthogonality loss's input).
        image_proj: ``[N, D]`` image projections.
        text_proj: ``[N, D]`` text projections of the paired reports.

    Returns:
        ``erank_feature``, ``erank_image_proj``, ``erank_text_proj`` (effective ranks of the raw outputs),
        ``alignment`` (α = 2, image vs. text projection), ``uniformity_image`` and ``uniformity_text`` (t = 2), all
        floats, and ``spectra``: the normalised singular-value spectrum of each of the three as a list of floats
        (keys ``image_feature``, ``image_proj``, ``text_proj``).
    """
    named = {"feature": image_feature, "image_proj": image_proj, "text_proj": text_proj}
    out: dict[str, float | dict[str, list[float]]] = {f"erank_{k}": effective_rank(v) for k, v in named.items()}
    out["alignment"] = alignment(image_proj, text_proj)
    out["uniformity_image"] = uniformity(image_proj)
    out["uniformity_text"] = uniformity(text_proj)
    out["spectra"] = {
        "image_feature": singular_value_spectrum(image_feature).tolist(),
        "image_proj": singular_value_spectrum(image_proj).tolist(),
        "text_proj": singular_value_spectrum(text_proj).tolist(),
    }
    return out
