"""The losses against a plain re-computation of the formulas in docs/method.md#losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mflag_monai.losses import AlignmentLoss, MFLAGLoss, OrthogonalityLoss, orthogonality_floor
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
    expected = 0.5 * (
        ((torch.diagonal(c) - 1) ** 2).sum() + 0.0051 * (c**2).sum() - 0.0051 * (torch.diagonal(c) ** 2).sum()
    )
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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_loss_under_cpu_autocast_is_finite_and_matches_fp32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    z = torch.relu(torch.randn(16, 2048)) * 3  # entries of ZᵀZ well above fp16's 65504
    xp, yp = torch.randn(16, 64), torch.randn(16, 64)
    expected = MFLAGLoss()(z, xp, yp)
    with torch.autocast("cpu", dtype=dtype):
        # what a model under autocast hands the loss: half-precision activations
        got = MFLAGLoss()(z.to(dtype), xp.to(dtype), yp.to(dtype))
        assert (z.to(dtype).T @ z.to(dtype)).dtype == dtype  # autocast is really on here
    for key in ("loss", "loss_align", "loss_orth"):
        assert torch.isfinite(got[key]) and got[key].dtype == torch.float32
        assert got[key].item() == pytest.approx(expected[key].item(), rel=0.01)


# docs/method.md#orthogonality-floor: f*(B, D) at λ = 0.0051
@pytest.mark.parametrize(
    ("batch", "dim", "floor"),
    [
        (1, 2048, 934.5),
        (16, 2048, 402.5),
        (64, 2048, 139.8),
        (128, 2048, 72.8),
        (512, 2048, 15.4),
        (16, 512, 35.0),
        (64, 512, 8.8),
        (128, 512, 3.9),
        (512, 512, 0.0),
        (1024, 512, 0.0),
    ],
)
def test_orthogonality_floor_values(batch: int, dim: int, floor: float) -> None:
    assert orthogonality_floor(batch, dim) == pytest.approx(floor, abs=0.06)  # the table gives 0.1 steps


def test_orthogonality_floor_is_reached_and_never_beaten() -> None:
    b, d, lambd = 4, 12, 0.3  # a large λ makes the floor far from the collapsed value
    floor = orthogonality_floor(b, d, lambd=lambd)
    loss = OrthogonalityLoss(lambd=lambd)
    torch.manual_seed(0)
    z = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([z], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(z)
        value.backward()
        return value

    for _ in range(5):
        optimizer.step(closure)
    assert loss(z).item() == pytest.approx(floor, rel=1e-6)
    for seed in range(20):  # random features sit above it
        assert (
            loss(torch.randn(b, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))).item() > floor
        )


def test_mflag_loss_reports_its_floor() -> None:
    z, xp = torch.rand(16, 2048), torch.randn(16, 8)
    assert MFLAGLoss()(z, xp, xp)["loss_orth_floor"].item() == pytest.approx(402.5, abs=0.05)
    assert MFLAGLoss(orth_feature="image_proj")(z, xp, xp)["loss_orth_floor"].item() == 0.0  # 16 >= 8
