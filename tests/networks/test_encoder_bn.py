"""encoder_bn: a frozen encoder's BatchNorm in downstream training keeps the pre-trained running statistics
(``frozen``) or normalises by the batch and updates them (``batch_stats``, MGCA's behaviour); the weights stay frozen
either way."""

from __future__ import annotations

import pytest
import torch

from mflag_monai.networks import build_classifier, build_retinanet, build_segmentation_unet
from mflag_monai.utils.errors import InputError


def running_means(encoder: torch.nn.Module) -> torch.Tensor:
    return torch.cat([m.running_mean.clone() for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)])


def step(network: torch.nn.Module, forward) -> tuple[bool, bool]:
    """(running statistics moved, encoder weights moved) after one training forward."""
    encoder = network.encoder if hasattr(network, "encoder") else network.feature_extractor.encoder
    before = running_means(encoder)
    weights = [p.clone() for p in encoder.parameters()]
    network.train()
    torch.manual_seed(0)
    forward(network, torch.randn(2, 3, 64, 64) * 3 + 1)
    moved = not torch.allclose(before, running_means(encoder))
    return moved, any(not torch.equal(a, b) for a, b in zip(weights, encoder.parameters()))


BUILDERS = {
    "classification": (lambda bn: build_classifier(2, depth=18, encoder_bn=bn), lambda n, x: n(x)),
    "segmentation": (lambda bn: build_segmentation_unet(depth=18, encoder_bn=bn), lambda n, x: n(x)),
    "detection": (
        lambda bn: build_retinanet(depth=18, fpn_channels=16, encoder_bn=bn),
        lambda n, x: n.feature_extractor(x),
    ),
}


@pytest.mark.parametrize("task", sorted(BUILDERS))
def test_batch_stats_updates_running_statistics_and_frozen_does_not(task: str) -> None:
    build, forward = BUILDERS[task]
    assert step(build("frozen"), forward) == (False, False)
    assert step(build("batch_stats"), forward) == (True, False)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InputError, match="--encoder_bn"):
        build_classifier(2, depth=18, encoder_bn="train")
