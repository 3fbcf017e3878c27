"""The trainer's batch transform (augment_on: device): once per batch, on the device, before either step."""

from __future__ import annotations

import copy

import pytest
import torch

from mflag_monai.data.text_features import TextFeatureCache, text_key
from mflag_monai.engines import MFLAGTrainer
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import MFLAG, build_image_encoder
from mflag_monai.transforms import CXRBatchAugmentation

BATCH, HIDDEN = 6, 16


class Counting:
    """Wraps a batch transform and records what it was given."""

    def __init__(self, transform: CXRBatchAugmentation) -> None:
        self.transform, self.calls, self.grad_enabled = transform, 0, []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.transform(images)


def tiny_model() -> MFLAG:
    torch.manual_seed(0)
    return MFLAG(build_image_encoder(18), text_hidden_size=HIDDEN, proj_hidden_dim=32, proj_out_dim=16).train()


def uint8_batches(count: int = 2) -> list[dict[str, object]]:
    g = torch.Generator().manual_seed(1)
    return [
        {
            "image": torch.randint(0, 256, (BATCH, 1, 32, 32), generator=g, dtype=torch.uint8),
            "report": [f"report {b} {i}" for i in range(BATCH)],
        }
        for b in range(count)
    ]


def text_cache(batches: list[dict], seed: int = 2) -> TextFeatureCache:
    """Features of every report of ``batches``: the trainer's cached text path."""
    texts = [t for b in batches for t in b["report"]]
    features = torch.randn(len(texts), HIDDEN, generator=torch.Generator().manual_seed(seed))
    return TextFeatureCache(features, [text_key(t) for t in texts], {})


def train(model: MFLAG, batches: list[dict], micro: int | None, transform=None) -> MFLAGTrainer:
    trainer = MFLAGTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=batches,
        network=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-2),
        loss_function=MFLAGLoss(),
        micro_batch_size=micro,
        batch_transform=transform,
        text_cache=text_cache(batches),
    )
    trainer.run()
    return trainer


@pytest.mark.parametrize("micro", [None, 2])
def test_augmented_on_the_device_once_per_batch(micro: int | None) -> None:
    """Training with the transform in the trainer equals training on batches augmented beforehand with the same
    seed: the plain step and both passes of the gradient cache see the same augmented images."""
    batches = uint8_batches()
    counting = Counting(CXRBatchAugmentation(seed=3))
    model = tiny_model()
    reference = copy.deepcopy(model)
    trainer = train(model, batches, micro, counting)
    assert counting.calls == len(batches) and counting.grad_enabled == [False] * len(batches)

    augment = CXRBatchAugmentation(seed=3)
    ready = [{**b, "image": augment(b["image"])} for b in batches]
    expected = train(reference, ready, micro)
    assert trainer.state.output["loss"].item() == pytest.approx(expected.state.output["loss"].item(), rel=1e-6)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)
