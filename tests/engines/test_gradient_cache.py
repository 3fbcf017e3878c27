"""Gradient-cached pre-training steps: the whole-batch loss and gradients in micro-batches, exact with the encoder's
BatchNorm in eval mode or with one micro-batch (in train mode BatchNorm normalises per micro-batch)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from helpers.numerics import exact_cpu_kernels
from mflag_monai.data.text_features import TextFeatureCache, text_key
from mflag_monai.engines import MFLAGTrainer, gradient_cached_backward
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import MFLAG, build_image_encoder

BATCH, HIDDEN = 10, 16


@pytest.fixture(autouse=True)
def _exact_kernels():
    """Every test here compares micro-batched encoder passes with a single pass over the batch. oneDNN's fp32
    convolution backward is batch-size dependent on some CPUs (1.9e-3 off float64 on an AMD EPYC for one of these
    batches), so both paths run on PyTorch's native kernels, which agree with float64 to ~1e-6 at any batch size;
    the tolerances below are stated against that."""
    with exact_cpu_kernels():
        yield


def tiny_model(seed: int = 0) -> MFLAG:
    torch.manual_seed(seed)
    return MFLAG(build_image_encoder(18), text_hidden_size=HIDDEN, proj_hidden_dim=32, proj_out_dim=16)


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, 32, 32, generator=g), torch.randn(BATCH, HIDDEN, generator=g)


def cached_reports(features: torch.Tensor, tag: str = "") -> tuple[list[str], TextFeatureCache]:
    """Report texts and a text-feature cache holding ``features`` for them: the trainer's cached text path."""
    texts = [f"report {tag}{i}" for i in range(len(features))]
    return texts, TextFeatureCache(features, [text_key(t) for t in texts], {})


def single_pass(model: MFLAG, images: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
    losses = MFLAGLoss()(model(images, text_features=features))
    losses["loss"].backward()
    return losses


def grads(model: MFLAG) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(reference: MFLAG, other: MFLAG) -> None:
    """Every parameter's gradient equal to fp32 round-off, measured against the largest gradient entry (a Linear
    bias before BatchNorm has a gradient of exactly zero in theory, so only noise to compare on its own scale)."""
    want, have = grads(reference), grads(other)
    assert set(have) == set(want) and len(want) == len(list(reference.parameters()))
    scale = max(g.abs().max().item() for g in want.values())
    for name, g in want.items():
        torch.testing.assert_close(have[name], g, rtol=1e-4, atol=1e-6 * scale, msg=name)


def bn_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers()}


@pytest.mark.parametrize("micro", [1, 3, 4])
def test_equals_single_pass_with_encoder_batchnorm_in_eval_mode(micro: int) -> None:
    images, features = batch()
    reference = tiny_model().train()
    reference.image_encoder.eval()  # batch statistics would differ per micro-batch; running ones do not
    cached = copy.deepcopy(reference)

    expected = single_pass(reference, images, features)
    got = gradient_cached_backward(cached, images, features, MFLAGLoss(), micro)

    for key in ("loss", "loss_align", "loss_orth"):
        assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-5)
    assert_same_gradients(reference, cached)


def test_one_micro_batch_is_the_single_pass_in_train_mode() -> None:
    images, features = batch()
    reference = tiny_model().train()
    cached = copy.deepcopy(reference)
    expected = single_pass(reference, images, features)
    got = gradient_cached_backward(cached, images, features, MFLAGLoss(), BATCH)
    assert got["loss"].item() == pytest.approx(expected["loss"].item(), rel=1e-6)
    assert_same_gradients(reference, cached)
    for name, b in bn_buffers(reference).items():
        torch.testing.assert_close(bn_buffers(cached)[name], b)


def test_running_statistics_see_every_image_once() -> None:
    images, features = batch()
    model = tiny_model().train()
    once = copy.deepcopy(model)
    gradient_cached_backward(model, images, features, MFLAGLoss(), 4)
    with torch.no_grad():  # one plain pass over the same micro-batches
        for chunk in images.split(4):
            once.image_encoder(chunk)
    counts = [m.num_batches_tracked.item() for m in model.image_encoder.modules() if isinstance(m, _BatchNorm)]
    assert counts and set(counts) == {3}  # 10 images in micro-batches of 4: three updates, not six
    for name, b in bn_buffers(once.image_encoder).items():
        torch.testing.assert_close(bn_buffers(model.image_encoder)[name], b, msg=name)


def test_stochastic_encoder_replays_the_same_draws() -> None:
    images, features = batch()
    reference = tiny_model().train()
    reference.image_encoder.eval()
    reference.image_encoder.fc = torch.nn.Dropout(0.5)  # after pooling: a random op inside the encoder
    reference.image_encoder.fc.train()
    cached = copy.deepcopy(reference)
    torch.manual_seed(7)  # the reference draws its masks chunk by chunk, in the order of pass (a)
    z = torch.cat([reference.image_encoder(chunk) for chunk in images.split(3)])
    expected = MFLAGLoss()(reference.project(z, features))
    expected["loss"].backward()
    torch.manual_seed(7)
    got = gradient_cached_backward(cached, images, features, MFLAGLoss(), 3)
    assert got["loss"].item() == pytest.approx(expected["loss"].item(), rel=1e-6)
    # pass (c) replays (a)'s dropout masks: otherwise the encoder gradient belongs to other features
    assert_same_gradients(reference, cached)


def test_trainer_micro_batches_give_the_exact_whole_batch_loss() -> None:
    images, features = batch()
    texts, cache = cached_reports(features)
    data = [{"image": images, "report": texts}]

    def run(micro: int | None) -> MFLAGTrainer:
        model = tiny_model()
        for m in model.image_encoder.modules():  # BatchNorm without batch statistics: the step is exactly comparable
            if isinstance(m, _BatchNorm):
                m.eval()
                m.train = lambda mode=True, m=m: m  # keep eval mode through network.train()
        params = [p for p in model.parameters() if p.requires_grad]
        trainer = MFLAGTrainer(
            device=torch.device("cpu"),
            max_epochs=1,
            train_data_loader=data,
            network=model,
            optimizer=torch.optim.SGD(params, lr=1e-3),
            loss_function=MFLAGLoss(),
            micro_batch_size=micro,
            text_cache=cache,
        )
        trainer.run()
        return trainer

    plain, cached = run(None), run(3)
    assert cached.state.output["loss"].item() == pytest.approx(plain.state.output["loss"].item(), rel=1e-5)
    moved = 0.0
    for (name, a), b in zip(plain.network.named_parameters(), cached.network.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)  # same SGD step from the same gradients
        moved = max(moved, (a - tiny_model().state_dict()[name]).abs().max().item())
    assert moved > 1e-3  # the step did change the weights
    assert cached.state.output["loss_orth_floor"].item() > 0  # batch 10 < feature width 512


def test_trainer_refuses_a_loader_without_a_full_batch() -> None:
    loader = torch.utils.data.DataLoader(list(range(5)), batch_size=8, drop_last=True)
    model = tiny_model()
    with pytest.raises(ValueError, match="batch_size 8 is larger than the 5 training samples"):
        MFLAGTrainer(
            device=torch.device("cpu"),
            max_epochs=1,
            train_data_loader=loader,
            network=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_function=MFLAGLoss(),
        )
    with pytest.raises(ValueError, match="micro_batch_size"):
        MFLAGTrainer(
            device=torch.device("cpu"),
            max_epochs=1,
            train_data_loader=[],
            network=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_function=MFLAGLoss(),
            micro_batch_size=0,
        )
