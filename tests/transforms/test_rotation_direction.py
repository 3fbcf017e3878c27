"""The augmentation's rotation turns the way torchvision's (and so the authors' ``RandomRotation``) does:
counter-clockwise as displayed for a positive angle, on the CPU chain and on the training device alike."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2.functional import rotate

from mflag_monai.transforms import CXRBatchAugmentation, cxr_pretrain_augmentation
from mflag_monai.utils.errors import InputError

SIDE = 64


def marker() -> torch.Tensor:
    """A dark ``[1, H, W]`` image with a bright 3x3 marker up and to the right of the centre."""
    image = torch.zeros(1, SIDE, SIDE)
    image[0, 15:18, 43:46] = 1.0
    return image


def centroid(image: torch.Tensor) -> torch.Tensor:
    """(row, column) of the bright marker."""
    weight = image[0].clamp_min(0.0)
    weight = torch.where(weight > 0.2 * weight.max(), weight, torch.zeros_like(weight))
    rows, cols = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    return torch.stack([(weight * rows).sum(), (weight * cols).sum()]) / weight.sum()


def through_the_cpu_chain(angle: float, interpolation: str = "bilinear") -> torch.Tensor:
    chain = cxr_pretrain_augmentation(
        image_size=SIDE,
        min_rotation_deg=angle,
        max_rotation_deg=angle,
        perspective_prob=0.0,
        autocontrast_prob=0.0,
        channels=1,
        cache_dtype=torch.float32,
        rotation_interpolation=interpolation,
    )
    return (chain({"image": marker()})["image"].as_tensor() + 1.0) / 2.0


def through_the_device_path(angle: float) -> torch.Tensor:
    augment = CXRBatchAugmentation(
        min_rotation_deg=angle, max_rotation_deg=angle, perspective_prob=0.0, autocontrast_prob=0.0, channels=1, seed=0
    )
    return (augment(marker()[None])[0] + 1.0) / 2.0


@pytest.mark.parametrize("angle", [30.0, 75.0])
def test_a_positive_angle_turns_as_torchvision_turns(angle: float) -> None:
    reference = centroid(rotate(marker(), angle, interpolation=InterpolationMode.BILINEAR))
    mirrored = centroid(rotate(marker(), -angle, interpolation=InterpolationMode.BILINEAR))
    assert torch.dist(reference, mirrored) > 5.0  # the test can tell the two directions apart
    for name, image in [("cpu", through_the_cpu_chain(angle)), ("device", through_the_device_path(angle))]:
        assert torch.dist(centroid(image), reference) < 1.0, f"{name}: {centroid(image)} vs torchvision {reference}"


def test_nearest_interpolation_keeps_the_marker_binary() -> None:
    image = through_the_cpu_chain(30.0, "nearest")
    values = torch.unique(image.round(decimals=4))
    assert set(values.tolist()) <= {0.0, 1.0}
    assert torch.dist(centroid(image), centroid(rotate(marker(), 30.0))) < 1.0


def test_an_inverted_range_or_unknown_interpolation_is_refused() -> None:
    with pytest.raises(InputError, match="min_rotation_deg 10 is above max_rotation_deg 5"):
        cxr_pretrain_augmentation(min_rotation_deg=10, max_rotation_deg=5)
    with pytest.raises(InputError, match="--rotation_interpolation"):
        cxr_pretrain_augmentation(rotation_interpolation="cubic")
    with pytest.raises(InputError, match="--perspective_interpolation"):
        cxr_pretrain_augmentation(perspective_interpolation="nearest")
