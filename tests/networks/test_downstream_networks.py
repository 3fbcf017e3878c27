"""Downstream networks: the pre-trained encoder loads strictly, and a frozen encoder stays frozen and in eval mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mflag_monai.networks import build_classifier, build_image_encoder, build_segmentation_unet


@pytest.mark.parametrize("depth", [18, 50])
def test_unet_and_probe_load_the_encoder_strictly(tmp_path: Path, depth: int) -> None:
    torch.manual_seed(depth)
    encoder = build_image_encoder(depth)
    path = tmp_path / "encoder.pt"
    torch.save({"module.encoder." + k: v for k, v in encoder.state_dict().items()}, path)
    unet = build_segmentation_unet(depth, pretrained_encoder=path)
    probe = build_classifier(3, depth, pretrained_encoder=path)
    for key, value in encoder.state_dict().items():
        assert torch.equal(unet.encoder.state_dict()[key], value)
        assert torch.equal(probe.encoder.state_dict()[key], value)
    assert unet(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.parametrize(
    "build",
    [lambda f: build_classifier(2, 18, freeze_encoder=f), lambda f: build_segmentation_unet(18, freeze_encoder=f)],
)
def test_frozen_encoder_stays_in_eval_mode_without_gradients(build) -> None:
    frozen = build(True).train()
    assert frozen.training and not frozen.encoder.training
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert any(p.requires_grad for p in frozen.parameters())
    tuned = build(False).train()
    assert tuned.encoder.training and all(p.requires_grad for p in tuned.encoder.parameters())


def test_missing_encoder_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--pretrained_encoder null"):
        build_classifier(2, 18, pretrained_encoder=tmp_path / "none.pt")
    assert build_classifier(2, 18, pretrained_encoder="null").encoder is not None
