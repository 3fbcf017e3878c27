"""The losses against a plain re-computation of SPEC §1's formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mflag_monai.losses import AlignmentLoss, MFLAGLoss, OrthogonalityLoss
from mflag_monai.networks import MFLAGOutput


def reference_alignment(x: np.ndarray, y: np.ndarray) -> float:
    total = 0.0
    for xb, yb in zip(x, y):
        xh, yh = xb / np.sqrt((xb**2).sum()), yb / np.sqrt((yb**2).sum())
        total += (2 - 2 * float(xh @ yh)) + (2 - 2 * float(yh @ xh))
    return total / len(x)


def reference_orthogonality(z: np.ndarray, lambd: float = 0.0051, scale: float = 0.5) -> float:
    b, d = z.shape
    c = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            c[i, j] = sum(z[k, i] * z[k, j] for k in range(b)) / b
    on = sum((c[i, i] - 1) ** 2 for i in range(d))
    off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    return scale * (on + lambd * off)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alignment_matches_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(7, 16)), rng.normal(size=(7, 16))
    got = AlignmentLoss()(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert got == pytest.approx(reference_alignment(x, y), abs=1e-6)


def test_alignment_extremes() -> None:
    x = torch.randn(5, 8, dtype=torch.float64)
    assert AlignmentLoss()(x, 3 * x).item() == pytest.approx(0.0, abs=1e-6)
    assert AlignmentLoss()(x, -x).item() == pytest.approx(8.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_orthogonality_matches_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = np.abs(rng.normal(size=(6, 12)))  # post-ReLU features are non-negative
    got = OrthogonalityLoss()(torch.from_numpy(z)).item()
    assert got == pytest.approx(reference_orthogonality(z), abs=1e-6)
    got = OrthogonalityLoss(lambd=0.3, scale=1.0)(torch.from_numpy(z)).item()
    assert got == pytest.approx(reference_orthogonality(z, 0.3, 1.0), abs=1e-6)


def test_orthogonality_zero_at_whitened_features() -> None:
    # Z with ZᵀZ/B = I (orthonormal columns scaled by sqrt(B)) gives zero loss.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 4)))
    z = torch.from_numpy(q * 4.0)
    assert OrthogonalityLoss()(z).item() == pytest.approx(0.0, abs=1e-9)


def test_orthogonality_not_centred_or_normalised() -> None:
    z = torch.rand(8, 5, dtype=torch.float64) + 3.0
    c = z.T @ z / 8
    expected = 0.5 * (((torch.diagonal(c) - 1) ** 2).sum() + 0.0051 * (c**2).sum() - 0.0051 * (torch.diagonal(c) ** 2).sum())
    assert OrthogonalityLoss()(z).item() == pytest.approx(expected.item(), rel=1e-12)


def test_mflag_loss_total_and_feature_choice() -> None:
    rng = np.random.default_rng(3)
    z = torch.from_numpy(np.abs(rng.normal(size=(6, 10))))
    xp, yp = torch.from_numpy(rng.normal(size=(6, 4))), torch.from_numpy(rng.normal(size=(6, 4)))
    out = MFLAGOutput(z, xp, yp)
    terms = MFLAGLoss(orth_weight=2.0, align_weight=0.5)(out)
    expected = 2.0 * reference_orthogonality(z.numpy()) + 0.5 * reference_alignment(xp.numpy(), yp.numpy())
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-6)
    assert terms["loss_orth"].item() == pytest.approx(reference_orthogonality(z.numpy()), abs=1e-6)
    on_proj = MFLAGLoss(orth_feature="image_proj")(z, xp, yp)["loss_orth"].item()
    assert on_proj == pytest.approx(reference_orthogonality(xp.numpy()), abs=1e-6)
    with pytest.raises(ValueError):
        MFLAGLoss(orth_feature="text_proj")


def test_loss_gradients_flow_only_through_inputs() -> None:
    z = torch.rand(4, 6, requires_grad=True)
    xp = torch.randn(4, 3, requires_grad=True)
    yp = torch.randn(4, 3, requires_grad=True)
    MFLAGLoss()(z, xp, yp)["loss"].backward()
    assert z.grad is not None and xp.grad is not None and yp.grad is not None
