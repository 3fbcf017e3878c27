"""Boxes through the detection chain: onto the resized network input and exactly back to the original pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from mflag_monai.transforms import RestoreBoxesd, SaveBoxesd, cxr_detection_transforms, cxr_image_transforms

ROWS, COLS = 150, 300
BOX = [60.0, 30.0, 120.0, 90.0]  # x1, y1, x2, y2: columns 60..119, rows 30..89


@pytest.fixture
def radiograph(tmp_path: Path) -> Path:
    """A non-square PNG whose only bright region is BOX."""
    pixels = np.full((ROWS, COLS), 40, np.uint8)
    pixels[30:90, 60:120] = 220
    path = tmp_path / "synthetic.png"
    Image.fromarray(pixels).save(path)
    return path


def test_boxes_follow_the_resize_and_come_back_exactly(radiograph: Path) -> None:
    item = cxr_detection_transforms(64)({"image": str(radiograph), "boxes": [BOX], "labels": [0]})
    assert item["image"].shape == (3, 64, 64) and item["labels"].tolist() == [0]
    expected = [60 * 64 / COLS, 30 * 64 / ROWS, 120 * 64 / COLS, 90 * 64 / ROWS]  # x scales by W, y by H
    np.testing.assert_allclose(item["boxes"].numpy(), [expected], rtol=1e-6)
    bright = np.argwhere(item["image"][0].numpy() > 0.0)  # the rectangle in the resized image, [row, column]
    x1, y1, x2, y2 = expected
    assert x1 - 1 <= bright[:, 1].min() and bright[:, 1].max() + 1 <= x2 + 1  # columns match x
    assert y1 - 1 <= bright[:, 0].min() and bright[:, 0].max() + 1 <= y2 + 1  # rows match y

    # a prediction equal to the resized true box maps back onto the original pixels
    restored = RestoreBoxesd("pred_boxes")({"image": item["image"], "pred_boxes": item["boxes"].clone()})
    np.testing.assert_allclose(restored["pred_boxes"].numpy(), [BOX], rtol=1e-5)


def test_negative_image_and_boxes_outside() -> None:
    """Past the image steps (an image loaded at 20 x 40 and resized to 16 x 16 is made here): no box gives [0, 4];
    boxes are clipped to the image, those left empty dropped with their labels."""
    chain = cxr_detection_transforms(16).transforms[-5:]  # typing, standardise, resize boxes, clip
    image = MetaTensor(torch.zeros(1, 16, 16), meta={"spatial_shape": np.array([20, 40])})  # loaded as H 20, W 40
    item = {"image": image, "boxes": [], "labels": []}
    for t in chain:
        item = t(item)
    assert item["boxes"].shape == (0, 4) and item["labels"].shape == (0,) and item["labels"].dtype == torch.int64
    item = {"image": image, "boxes": [[-5, 2, 10, 8], [50, 0, 60, 5]], "labels": [0, 0]}
    for t in chain:
        item = t(item)
    # x scales by 16/40, y by 16/20: [-2, 1.6, 4, 6.4] is clipped at x = 0; [20, 0, 24, 4] lies right of the image
    np.testing.assert_allclose(item["boxes"].numpy(), [[0.0, 1.6, 4.0, 6.4]], rtol=1e-6)
    assert item["labels"].tolist() == [0]


def test_inference_writes_boxes_in_original_pixels(radiograph: Path, tmp_path: Path) -> None:
    item = {"image": str(radiograph)}
    for t in cxr_image_transforms(64):
        item = t(item)
    scale = torch.tensor([64 / COLS, 64 / ROWS, 64 / COLS, 64 / ROWS])
    item.update(pred_boxes=torch.tensor([BOX]) * scale, pred_scores=torch.tensor([0.87]), pred_labels=torch.tensor([0]))
    item = RestoreBoxesd("pred_boxes")(item)
    item = SaveBoxesd("pred_boxes", output_dir=tmp_path / "out", label_names=["opacity"])(item)
    record = json.loads((tmp_path / "out" / "synthetic_boxes.json").read_text())
    assert (record["rows"], record["columns"]) == (ROWS, COLS) and record["image"] == str(radiograph)
    (obj,) = record["boxes"]
    assert obj["box"] == pytest.approx(BOX, abs=0.01) and obj["score"] == 0.87 and obj["label_name"] == "opacity"
    assert Image.open(tmp_path / "out" / "synthetic_boxes.png").size[0] > 100
    assert item["pred_boxes_files"][0].endswith("synthetic_boxes.json")
