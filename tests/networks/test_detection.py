"""RetinaNet on the frozen encoder: pre-trained weights, freezing, anchors, and the x/y convention at the detector's
boundary (MONAI's detector puts the first box coordinate along the rows of a [C, H, W] image)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mflag_monai.networks import build_detector, build_image_encoder, build_retinanet
from mflag_monai.networks.detection import DEFAULT_ANCHOR_SIZES, scaled_anchor_sizes, swap_box_xy

TINY = {"depth": 18, "fpn_channels": 16}


def tiny_detector(image_size: int = 64, **detector_kwargs: object):  # noqa: ANN201
    """A ResNet-18 RetinaNet and its detector."""
    return build_detector(build_retinanet(**TINY), image_size=image_size, **detector_kwargs)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("enc") / "encoder.pt"
    torch.save(build_image_encoder(18).state_dict(), path)
    return path


def test_pretrained_frozen_encoder_keeps_weights_and_statistics(encoder_file: Path) -> None:
    network = build_retinanet(pretrained_encoder=encoder_file, **TINY)
    detector = build_detector(network, image_size=64)
    encoder = network.feature_extractor.encoder
    saved = torch.load(encoder_file, weights_only=True)
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in saved.items())
    assert not any(p.requires_grad for p in encoder.parameters())
    trainable = [n for n, p in network.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("feature_extractor.encoder.") for n in trainable)  # pyramid and heads
    detector.train()
    assert not encoder.training and network.classification_head.training  # BatchNorm statistics kept
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 30.0, 40.0]]), "labels": torch.tensor([0])}] * 2
    losses = detector(torch.randn(2, 3, 64, 64), targets)
    (losses["classification"] + losses["box_regression"]).backward()
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in saved.items())  # running stats untouched
    assert not build_retinanet(pretrained_encoder="null", **TINY).feature_extractor.encoder.conv1.weight.requires_grad


def test_missing_encoder_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--pretrained_encoder null"):
        build_retinanet(pretrained_encoder=tmp_path / "nope.pt", **TINY)


def test_anchors_scale_with_the_image_size() -> None:
    assert scaled_anchor_sizes(DEFAULT_ANCHOR_SIZES, 224) == tuple(
        tuple(float(s) for s in lv) for lv in DEFAULT_ANCHOR_SIZES
    )
    assert scaled_anchor_sizes(((16, 32),), 112) == ((8.0, 16.0),)
    detector = tiny_detector(image_size=112)
    assert detector.anchor_generator.sizes[0] == (8.0, 10.0, 12.5)  # 16, 20, 25 at half the size
    assert detector.num_anchors_per_loc == 9 and detector.size_divisible == (64, 64)
    with pytest.raises(ValueError, match="levels"):
        build_retinanet(anchor_sizes=((16,), (32,)), **TINY)


def test_network_output_is_one_dense_tensor_that_torchscript_compiles() -> None:
    """[B, classes + 4, anchors], ordered as MONAI's anchors; what verify_net_in_out and ckpt_export need."""
    network = build_retinanet(**TINY).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        dense = network(x)
        maps = network.head_maps(x)
    anchors = sum(m.shape[-2] * m.shape[-1] for m in maps["classification"]) * 9  # levels 8x8, 4x4, 2x2, 1x1
    assert dense.shape == (2, 5, anchors) == (2, 5, 85 * 9)
    first = maps["classification"][0].view(2, 9, 1, 8, 8)  # anchor shape a at row r, column c
    assert dense[1, 0, (3 * 8 + 5) * 9 + 4] == first[1, 4, 0, 3, 5]  # flat index (r * W + c) * A + a
    scripted = torch.jit.script(network)
    with torch.no_grad():
        assert torch.equal(scripted(x), dense)


def test_detections_follow_the_image_convention_on_a_non_square_image() -> None:
    """Boxes come back as [x1, y1, x2, y2] with x along the columns: clipped to W in x and to H in y."""
    torch.manual_seed(0)
    detector = tiny_detector(score_thresh=0.0, nms_thresh=1.0, detections_per_img=300).eval()
    with torch.no_grad():
        boxes = detector(torch.randn(1, 3, 64, 128))[0]["boxes"]  # H 64, W 128
    assert len(boxes) > 100
    assert boxes[:, 2].max() > 100 and boxes[:, 2].max() <= 128  # x reaches across the 128 columns
    assert boxes[:, 3].max() <= 64 and (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()


def test_training_targets_reach_monai_in_its_axis_order(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = tiny_detector().train()
    seen = {}

    def capture(head_outputs, targets, anchors, num_anchor_locs_per_level):  # noqa: ANN001
        seen.update(targets=targets, anchors=anchors)
        return {"classification": torch.zeros(()), "box_regression": torch.zeros(())}

    monkeypatch.setattr(detector, "compute_loss", capture)
    box = torch.tensor([[100.0, 10.0, 120.0, 30.0]])  # right-hand side of a 64 x 128 image: x 100..120, y 10..30
    detector(torch.randn(1, 3, 64, 128), [{"boxes": box, "labels": torch.tensor([0])}])
    assert torch.equal(seen["targets"][0]["boxes"], swap_box_xy(box))  # [y1, x1, y2, x2]
    centres = (seen["anchors"][0][:, :2] + seen["anchors"][0][:, 2:]) / 2
    assert centres[:, 0].max() < 64 < centres[:, 1].max() < 128  # MONAI's first axis is the rows
