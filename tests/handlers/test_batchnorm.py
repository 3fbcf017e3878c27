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


# ------------------------------------------------------------------------------------------- torch's update_bn


@torch.no_grad()
def reference_recalibration(model: MFLAG, data: list, batch_size: int) -> int:
    """The package's hand-written pass before it delegated to ``torch.optim.swa_utils.update_bn``: reset every
    BatchNorm, momentum ``None`` (cumulative average), train mode, one forward pass per batch of at least two images,
    then momenta and mode restored (and the old statistics when no batch was formed)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [
        (m, m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms
    ]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    for start in range(0, len(data), batch_size):
        items = [d for d in data[start : start + batch_size] if d is not None]
        if len(items) < 2:
            continue
        images = torch.stack([d["image"] for d in items]).float()
        model(images, text_features=torch.stack([d["text_feature"] for d in items]).float())
        seen += len(items)
    for m, momentum, mean, var, count in saved:
        m.momentum = momentum
        if seen == 0:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
    model.train(was_training)
    return seen


def stale_model(training: bool, momentum: float | None = 0.1) -> MFLAG:
    """The tiny model with statistics left by other images (and a chosen momentum) in train or eval mode."""
    model = tiny_model().train(training)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(40.0)
            m.num_batches_tracked.fill_(7)
            m.momentum = momentum
    return model


CASES = {  # name: (dataset size, batch size, positions of images that failed to load)
    "equal batches": (12, 4, ()),
    "short last batch": (10, 4, ()),
    "last batch of one left out": (9, 4, ()),
    "one batch": (6, 64, ()),
    "failed images": (12, 4, (1, 4, 5, 6)),
    "nothing measured": (1, 4, ()),
    "only a batch of one left": (5, 4, (0, 1, 2)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("training", [True, False])
def test_statistics_equal_the_hand_written_pass_exactly(name: str, training: bool) -> None:
    """Every buffer (running mean and variance, batch count) bit for bit, momenta and mode, against the hand-written
    pass on the same ResNet-18 model and the same batches."""
    size, batch_size, failed = CASES[name]
    data: list = dataset(size)
    for i in failed:
        data[i] = None
    expected_model, model = stale_model(training, momentum=0.3), stale_model(training, momentum=0.3)
    expected_seen = reference_recalibration(expected_model, data, batch_size)
    assert recalibrate_batchnorm(model, data, features_of, batch_size=batch_size) == expected_seen
    expected_state = expected_model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected_state[key]), key
    assert [m.momentum for m in model.modules() if isinstance(m, _BatchNorm)] == [
        m.momentum for m in expected_model.modules() if isinstance(m, _BatchNorm)
    ]
    assert model.training is training and all(m.training is training for m in model.modules())


def test_torch_update_bn_equals_the_hand_written_pass_exactly() -> None:
    """``torch.optim.swa_utils.update_bn`` itself (the library the package delegates to) on a fixed loader."""
    from torch.optim.swa_utils import update_bn

    class Forward(torch.nn.Module):
        def __init__(self, model: MFLAG) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: dict) -> None:
            self.model(batch["image"], text_features=batch["text_feature"])

    data = dataset(10)
    expected_model, model = stale_model(False), stale_model(False)
    reference_recalibration(expected_model, data, 4)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    update_bn(loader, Forward(model.train()))  # update_bn restores the mode of the module it is given
    model.eval()
    expected_state = expected_model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected_state[key]), key


@pytest.mark.parametrize("training", [True, False])
def test_a_failing_pass_restores_momenta_mode_and_statistics(training: bool) -> None:
    """What the package keeps around ``update_bn``: a pass that raises before any batch went through leaves the old
    statistics, momenta and mode (``update_bn`` alone would leave them reset, ``None`` and train mode)."""
    model = stale_model(training, momentum=0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def broken(batch: dict) -> tuple[None, torch.Tensor]:
        raise OSError("unreadable")

    with pytest.raises(OSError, match="unreadable"):
        recalibrate_batchnorm(model, dataset(8), broken, batch_size=4)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(m.momentum == 0.3 for m in model.modules() if isinstance(m, _BatchNorm))
    assert all(m.training is training for m in model.modules())
