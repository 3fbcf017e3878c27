"""Overlay sheets: one PNG per call, the expected layout, no display needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mflag_monai.utils.overlay import save_box_overlay, save_overlay_sheet


def test_overlay_sheet_rows_and_formats(tmp_path: Path) -> None:
    images = torch.rand(3, 3, 32, 32) * 2 - 1  # a [-1, 1] three-channel batch, as fed to ResNet
    truths = torch.zeros(3, 1, 32, 32)
    truths[0, 0, 8:16, 8:16] = 1
    preds = torch.zeros(3, 1, 32, 32)
    preds[0, 0, 10:18, 10:18] = 0.9
    preds[1, 0, 0:4, 0:4] = 0.8  # prediction on an empty truth
    path = save_overlay_sheet(images, truths, preds, tmp_path / "sub" / "sheet.png", titles=["a", "b", "c"])
    assert path == tmp_path / "sub" / "sheet.png" and path.is_file()
    width, height = Image.open(path).size
    assert (width, height) == (900, 900)  # 3 columns x 3 rows of 3-inch panels at 100 dpi

    # lists of [H, W] numpy arrays, capped by max_items
    listed = save_overlay_sheet([np.zeros((16, 20))] * 5, [np.zeros((16, 20))] * 5, [np.ones((16, 20))] * 5,
                                tmp_path / "list.png", max_items=2)  # fmt: skip
    assert Image.open(listed).size == (900, 600)


def test_overlay_sheet_checks_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_overlay_sheet([np.zeros((4, 4))], [], [np.zeros((4, 4))], tmp_path / "x.png")
    with pytest.raises(ValueError):
        save_overlay_sheet([np.zeros((4, 4))], [np.zeros((4, 5))], [np.zeros((4, 4))], tmp_path / "x.png")


def test_box_overlay(tmp_path: Path) -> None:
    image = torch.rand(1, 64, 48)
    path = save_box_overlay(image, [[4, 4, 20, 30]], torch.tensor([[5.0, 6.0, 22.0, 28.0], [30, 40, 44, 60]]),
                            torch.tensor([0.91, 0.55]), tmp_path / "boxes.png")  # fmt: skip
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
    green = (pixels[..., 1] > 200) & (pixels[..., 0] < 100) & (pixels[..., 2] < 100)
    assert red.any() and green.any()
    # negatives: no boxes at all, no scores
    assert save_box_overlay(image[0].numpy(), [], None, None, tmp_path / "empty.png").is_file()
    with pytest.raises(ValueError):
        save_box_overlay(image, [], [[0, 0, 1, 1]], [0.5, 0.6], tmp_path / "bad.png")
