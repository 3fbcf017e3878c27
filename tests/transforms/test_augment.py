"""The pre-training augmentation chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from helpers.dicom import write_dicom
from mflag_monai.transforms import RandPerspectived, cxr_eval_transforms, cxr_pretrain_transforms


def test_pretrain_chain_shapes_and_range(tmp_path: Path) -> None:
    stored = (np.random.default_rng(0).random((80, 72)) * 4095).astype(np.uint16)
    path = str(write_dicom(tmp_path / "a.dcm", stored))
    chain = cxr_pretrain_transforms(resize=64, image_size=56)
    chain.set_random_state(seed=0)
    out = chain({"image": path, "report": "r"})
    assert out["image"].shape == (3, 56, 56)
    assert float(out["image"].min()) >= -1.0 - 1e-6 and float(out["image"].max()) <= 1.0 + 1e-6
    assert torch.equal(out["image"][0], out["image"][1])
    ev = cxr_eval_transforms(resize=64, image_size=56)({"image": path})
    assert ev["image"].shape == (3, 56, 56)


def test_augmentation_is_random_but_seedable(tmp_path: Path) -> None:
    stored = (np.random.default_rng(1).random((64, 64)) * 4095).astype(np.uint16)
    path = str(write_dicom(tmp_path / "a.dcm", stored))
    chain = cxr_pretrain_transforms(resize=64, image_size=48)
    chain.set_random_state(seed=3)
    a = chain({"image": path})["image"]
    b = chain({"image": path})["image"]
    chain.set_random_state(seed=3)
    c = chain({"image": path})["image"]
    assert not torch.equal(a, b) and torch.equal(a, c)


def test_perspective_keeps_shape_and_moves_corners() -> None:
    img = torch.ones(1, 40, 40)
    t = RandPerspectived("image", distortion=0.5, prob=1.0)
    t.set_random_state(seed=0)
    out = t({"image": img})["image"]
    assert out.shape == img.shape
    assert float(out.mean()) < 1.0  # corners pulled in, filled with 0
    assert torch.equal(RandPerspectived("image", prob=0.0)({"image": img})["image"], img)
