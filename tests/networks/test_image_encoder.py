"""Image encoder: torchvision layout, prefixes, feature sizes."""

from __future__ import annotations

import pytest
import torch
import torchvision

from mflag_monai.networks import build_image_encoder, load_encoder_state_dict
from mflag_monai.networks.image_encoder import ResNetEncoder
from mflag_monai.utils.errors import InputError


@pytest.mark.parametrize("depth,dim", [(18, 512), (34, 512), (50, 2048)])
def test_feature_dim(depth: int, dim: int) -> None:
    enc = build_image_encoder(depth).eval()
    out = enc(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, dim) and enc.feature_dim == dim
    assert (out >= 0).all()  # pooled post-ReLU feature


def test_unknown_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        build_image_encoder(101)


@pytest.mark.parametrize("prefix", ["", "module.", "encoder.", "module.encoder."])
def test_torchvision_resnet50_loads_strictly_and_matches(prefix: str) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50()
    state = {prefix + k: v for k, v in reference.state_dict().items()}
    enc = load_encoder_state_dict(ResNetEncoder(50), state, strict=True).eval()
    reference.fc = torch.nn.Identity()
    reference.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(enc(x), reference(x))


def test_whole_mflag_checkpoint_with_other_heads_loads() -> None:
    reference = torchvision.models.resnet18()
    state = {f"image_encoder.{k}": v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    state["image_projector.0.weight"] = torch.zeros(3, 3)
    enc = load_encoder_state_dict(ResNetEncoder(18), state)
    assert torch.equal(enc.conv1.weight, reference.conv1.weight)


def test_wrong_depth_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="ResNet-50") as caught:
        load_encoder_state_dict(ResNetEncoder(50), torchvision.models.resnet18().state_dict(), source="r18.pth")
    assert str(caught.value).endswith("(r18.pth)") and "\n" not in str(caught.value)


def test_build_from_file(tmp_path) -> None:
    reference = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, path)
    enc = build_image_encoder(18, pretrained_weights=path)
    assert torch.equal(enc.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_forward_features_shapes() -> None:
    feats = ResNetEncoder(18).forward_features(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
