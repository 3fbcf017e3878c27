"""Downstream transform chains: masks saved as 0/255 (our preparers) and 0/1 (MONAI Label, viewers) read the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.transforms import cxr_segmentation_transforms


@pytest.mark.parametrize("foreground", [1, 255])
def test_mask_foreground_survives_any_png_encoding(tmp_path: Path, foreground: int) -> None:
    image = tmp_path / "image.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)).save(image)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 8:24] = foreground
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = cxr_segmentation_transforms(image_size=32)({"image": str(image), "label": str(tmp_path / "mask.png")})
    label = np.asarray(out["label"])
    assert label.shape == (1, 32, 32) and set(np.unique(label)) == {0.0, 1.0}
    assert label.sum() == 16 * 8  # the 32x16 box at half size
