"""Latent-geometry metrics against cases computable by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mflag_monai.metrics import alignment, effective_rank, latent_geometry, singular_value_spectrum, uniformity


def test_effective_rank_of_evenly_spread_features_is_full() -> None:
    eye = torch.eye(6)
    # [I; -I] has zero mean and six equal singular values: every direction used equally
    assert effective_rank(torch.cat([eye, -eye])) == pytest.approx(6.0)
    assert effective_rank(eye, center=False) == pytest.approx(6.0)
    # centring I_n removes one direction (the mean); the remaining n - 1 are equal
    assert effective_rank(eye) == pytest.approx(5.0)


def test_effective_rank_of_rank_one_features_is_one() -> None:
    u, v = torch.randn(20, 1, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)
    assert effective_rank(u @ v + 3.0 * v) == pytest.approx(1.0)  # a shared offset along v: still one direction
    assert effective_rank((u @ v).float()) == pytest.approx(1.0, abs=1e-4)  # float32 rounding: a tiny tail


def test_effective_rank_matches_the_entropy_formula() -> None:
    # singular values 3 and 1 (no centring): p = (3/4, 1/4), erank = exp(H(p))
    features = torch.diag(torch.tensor([3.0, 1.0]))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(features, center=False) == pytest.approx(expected)


def test_effective_rank_of_constant_features_is_zero() -> None:
    assert effective_rank(torch.ones(5, 4)) == 0.0


def test_spectrum_is_sorted_and_normalised() -> None:
    features = torch.diag(torch.tensor([1.0, 3.0, 2.0]))
    raw = singular_value_spectrum(features, normalize=False, center=False)
    assert raw.tolist() == pytest.approx([3.0, 2.0, 1.0])
    assert singular_value_spectrum(features, center=False).tolist() == pytest.approx([0.5, 1 / 3, 1 / 6])
    assert float(singular_value_spectrum(torch.randn(10, 4)).sum()) == pytest.approx(1.0)
    assert singular_value_spectrum(torch.randn(10, 4)).shape == (4,)


def test_alignment() -> None:
    x = torch.randn(7, 5)
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-12)
    assert alignment(x, 2.5 * x) == pytest.approx(0.0, abs=1e-12)  # measured on the unit sphere
    assert alignment(x, -x) == pytest.approx(4.0)  # antipodal: ||2x̂||² = 4
    assert alignment(x, -x, alpha=1) == pytest.approx(2.0)
    e = torch.eye(2)
    assert alignment(e, e.flip(0)) == pytest.approx(2.0)  # orthogonal unit vectors: ||e1 - e2||² = 2


def test_uniformity_of_known_sets() -> None:
    # two antipodal points: one pair at squared distance 4 -> log exp(-t·4) = -4t
    pair = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(pair) == pytest.approx(-8.0)
    assert uniformity(pair, t=0.5) == pytest.approx(-2.0)
    # two orthogonal points: squared distance 2
    assert uniformity(torch.eye(2)) == pytest.approx(-4.0)
    # three points: pairs at squared distances 2, 2, 4 -> log mean(e^-4, e^-4, e^-8)
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert uniformity(three) == pytest.approx(math.log((2 * math.exp(-4) + math.exp(-8)) / 3))
    # coincident points are the least uniform: 0
    assert uniformity(torch.ones(4, 3)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        uniformity(torch.ones(1, 3))


def test_latent_geometry_keys_and_values() -> None:
    torch.manual_seed(0)
    feature, proj = torch.relu(torch.randn(16, 12)), torch.randn(16, 6)
    geometry = latent_geometry(feature, proj, proj)
    assert set(geometry) == {
        "erank_feature",
        "erank_image_proj",
        "erank_text_proj",
        "alignment",
        "uniformity_image",
        "uniformity_text",
        "spectra",
    }
    assert geometry["alignment"] == pytest.approx(0.0, abs=1e-12)
    assert geometry["uniformity_image"] == geometry["uniformity_text"] < 0
    assert 1.0 < geometry["erank_feature"] <= 12 and 1.0 < geometry["erank_image_proj"] <= 6
    lengths = {k: len(v) for k, v in geometry["spectra"].items()}
    assert lengths == {"image_feature": 12, "image_proj": 6, "text_proj": 6}
