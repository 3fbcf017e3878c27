"""InfoNCE against a hand computation, and the objective registry the pre-training bundle builds from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mflag_monai.losses import OBJECTIVES, InfoNCELoss, MFLAGLoss, build_objective, register_objective
from mflag_monai.networks import MFLAGOutput


def reference_infonce(x: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Loops over rows and columns: the mean of the image->text and text->image cross-entropies."""
    xn = [r / math.sqrt(float(r @ r)) for r in x]
    yn = [r / math.sqrt(float(r @ r)) for r in y]
    n = len(x)
    s = [[float(xn[i] @ yn[j]) / temperature for j in range(n)] for i in range(n)]
    image_to_text = sum(-s[i][i] + math.log(sum(math.exp(s[i][j]) for j in range(n))) for i in range(n)) / n
    text_to_image = sum(-s[j][j] + math.log(sum(math.exp(s[i][j]) for i in range(n))) for j in range(n)) / n
    return 0.5 * (image_to_text + text_to_image)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_infonce_equals_the_hand_computation(temperature: float) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    out = InfoNCELoss(temperature)(MFLAGOutput(torch.zeros(6, 3), torch.from_numpy(x), torch.from_numpy(y)))
    # the temperature is held as a float32 log-scale (a parameter when learnt): τ to float32 precision, and the loss
    # exactly the formula's at that τ
    assert out["temperature"].item() == pytest.approx(temperature, rel=1e-7)
    assert out["loss"].item() == pytest.approx(reference_infonce(x, y, out["temperature"].item()), rel=1e-12)
    assert 0.5 * (out["loss_image_to_text"] + out["loss_text_to_image"]).item() == pytest.approx(out["loss"].item())


def test_infonce_is_chance_for_identical_projections_and_low_for_matched_pairs() -> None:
    n = 8
    same = torch.ones(n, 4, dtype=torch.float64)  # every image looks like every report: chance, ln n
    assert InfoNCELoss(0.07)(same, same, same)["loss"].item() == pytest.approx(math.log(n), rel=1e-9)
    eye = torch.eye(n, dtype=torch.float64)  # each image only like its own report
    assert InfoNCELoss(0.07)(eye, eye, eye)["loss"].item() < 1e-5


def test_learnt_temperature_is_a_parameter_that_trains() -> None:
    loss = InfoNCELoss(0.07, learn_temperature=True)
    assert [n for n, _ in loss.named_parameters()] == ["log_scale"]
    assert list(InfoNCELoss(0.07).parameters()) == []  # fixed: a buffer only
    x = torch.randn(6, 4)
    loss(x, x, x)["loss"].backward()  # matched pairs: sharper logits help, so the scale moves
    assert loss.log_scale.grad is not None and loss.log_scale.grad.item() != 0.0


def test_build_objective_picks_the_named_settings() -> None:
    settings = {"mflag": {"lambd": 0.3}, "infonce": {"temperature": 0.2}}
    mflag = build_objective("mflag", **settings)
    infonce = build_objective("infonce", **settings)
    assert isinstance(mflag, MFLAGLoss) and mflag.orthogonality.lambd == 0.3
    assert isinstance(infonce, InfoNCELoss) and infonce(torch.eye(3), torch.eye(3), torch.eye(3))[
        "temperature"
    ].item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown objective 'nope'.*infonce, mflag"):
        build_objective("nope", **settings)


def test_a_third_objective_is_one_registration() -> None:
    @register_objective("mean-cosine-test")
    class MeanCosine(nn.Module):
        def forward(self, output: MFLAGOutput) -> dict[str, torch.Tensor]:
            cos = torch.cosine_similarity(output.image_proj, output.text_proj).mean()
            return {"loss": -cos, "cosine": cos.detach()}

    try:
        built = build_objective("mean-cosine-test")
        assert isinstance(built, MeanCosine)
        with pytest.raises(ValueError, match="already registered"):
            register_objective("mean-cosine-test")(InfoNCELoss)
    finally:
        OBJECTIVES.pop("mean-cosine-test")
