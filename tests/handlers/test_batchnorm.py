"""BatchNorm statistics re-estimated on evaluation-preprocessed images describe them exactly."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from helpers.numerics import exact_cpu_kernels
from mflag_monai.handlers.batchnorm import recalibrate_batchnorm
from mflag_monai.networks import MFLAG, build_image_encoder


def tiny_model() -> MFLAG:
    torch.manual_seed(0)
    return MFLAG(build_image_encoder(18), text_hidden_size=8, proj_hidden_dim=16, proj_out_dim=8)


def dataset(n: int, seed: int = 1) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"image": torch.randn(3, 32, 32, generator=g) * 2 + 1, "text_feature": torch.randn(8, generator=g)}
        for _ in range(n)
    ]


def features_of(batch: dict) -> tuple[None, torch.Tensor]:
    return None, batch["text_feature"]


def test_first_layer_statistics_are_the_data_statistics() -> None:
    model = tiny_model().eval()
    for m in model.modules():  # stale statistics, as left by training on other images
        if isinstance(m, _BatchNorm):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(40.0)
    data = dataset(12)
    # batches of 4 against one pass over 12: native kernels, whose fp32 results do not depend on the batch size the
    # way oneDNN's can on some CPUs (tests/helpers/numerics.py)
    with exact_cpu_kernels():
        seen = recalibrate_batchnorm(model, data, features_of, batch_size=4)
        with torch.no_grad():
            conv = model.image_encoder.conv1(torch.stack([d["image"] for d in data]))
    assert seen == 12
    # equal batches: the cumulative average of batch means is the mean over all images
    torch.testing.assert_close(model.image_encoder.bn1.running_mean, conv.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    batch_vars = torch.stack([c.var(dim=(0, 2, 3)) for c in conv.split(4)])  # unbiased, per batch, as BatchNorm keeps
    torch.testing.assert_close(model.image_encoder.bn1.running_var, batch_vars.mean(0), rtol=1e-4, atol=1e-5)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, _BatchNorm))  # momenta restored
    assert not model.training


def test_eval_mode_then_matches_train_mode_on_the_same_batch() -> None:
    model = tiny_model()
    data = dataset(64)
    images = torch.stack([d["image"] for d in data])
    features = torch.stack([d["text_feature"] for d in data])
    with torch.no_grad():
        model.train()
        reference = model(images, text_features=features)
        model.eval()
        stale = model(images, text_features=features)
    recalibrate_batchnorm(model, data, features_of, batch_size=64)  # one batch: the statistics are this batch's
    model.eval()
    with torch.no_grad():
        calibrated = model(images, text_features=features)
    # running variances are unbiased, batch normalisation uses the biased one: equal up to (n-1)/n per layer, which
    # compounds over the network's BatchNorms (6% here at 64 images; 26% at 16)
    error = (calibrated.image_proj - reference.image_proj).abs().mean().item()
    assert error < 0.1 * reference.image_proj.abs().mean().item()
    assert (stale.image_proj - reference.image_proj).abs().mean().item() > 5 * error


def test_nothing_to_measure_leaves_the_statistics() -> None:
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recalibrate_batchnorm(model, dataset(1), features_of, batch_size=4) == 0  # a batch of one is left out
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("training", [True, False])
def test_mode_is_restored(training: bool) -> None:
    model = tiny_model().train(training)
    recalibrate_batchnorm(model, dataset(4), features_of, batch_size=2)
    assert model.training is training
