"""mflag_monai.handlers.predictions: the per-input rows and files of an inference run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from mflag_monai.handlers.predictions import EmbeddingWriter, PredictionCSVWriter


def image(path: str) -> MetaTensor:
    return MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": path, "source_format": "png"})


def test_prediction_csv_has_one_row_per_image_with_empty_uids_for_png(tmp_path: Path) -> None:
    rows = [
        {"image": image("/d/a.png"), "pred": torch.tensor([0.25, 0.5])},
        {"image": image("/d/b.png"), "pred": [1, 0]},
    ]
    engine = Engine(lambda e, b: rows)
    writer = PredictionCSVWriter(tmp_path / "predictions.csv", names=["x", "y"])
    writer.attach(engine)
    engine.run([0], max_epochs=1)
    with (tmp_path / "predictions.csv").open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["image", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "x", "y"]
    assert table[1] == ["/d/a.png", "", "", "", "0.250000", "0.500000"]
    assert len(table) == 3


def test_embeddings_of_same_named_files_do_not_overwrite_each_other(tmp_path: Path) -> None:
    rows = [
        {"image": image("/d/1/x.png"), "pred": torch.arange(5.0)},
        {"image": image("/d/2/x.png"), "pred": -torch.arange(5.0)},
    ]
    engine = Engine(lambda e, b: rows)
    writer = EmbeddingWriter(tmp_path, split=lambda out: (out[:, :2], out[:, 2:]))
    writer.attach(engine)
    engine.run([0], max_epochs=1)
    assert sorted(p.name for p in (tmp_path / "embeddings").iterdir()) == ["x.npz", "x_2.npz"]
    arrays = np.load(tmp_path / "embeddings.npz")
    assert arrays["feature"].shape == (2, 2) and arrays["projection"].tolist() == [[2, 3, 4], [-2, -3, -4]]
