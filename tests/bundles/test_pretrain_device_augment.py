"""The pre-training bundle with ``--augment_on device``, on tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from test_pretrain_bundle import CONFIG, run_bundle


def parsed(augment_on: str, item: str):
    parser = ConfigParser()
    parser.read_config(str(CONFIG))
    parser["augment_on"] = augment_on
    return parser.get_parsed_content(item)


def test_the_setting_moves_the_random_part_to_the_trainer(tmp_path: Path) -> None:
    from mflag_monai.transforms import CXRBatchAugmentation

    assert parsed("cpu", "train#batch_augmentation") is None  # the default: all augmentation in the workers
    assert isinstance(parsed("device", "train#batch_augmentation"), CXRBatchAugmentation)
    names = [type(t).__name__ for t in parsed("device", "train#preprocessing").transforms]
    assert names[-2:] == ["RandSpatialCropd", "EnsureTyped"] and "RandRotated" not in names
    assert "RandRotated" in [type(t).__name__ for t in parsed("cpu", "train#preprocessing").transforms]
    with pytest.raises(Exception, match="augment_on"):
        parsed("gpu", "train#preprocessing")


def test_device_augmentation_trains_like_cpu_augmentation(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """Learning rate 0: the first epoch's losses are the same model's on the same images, augmented by either chain
    (device mode with gradient-cached micro-batches too); then device mode trains."""
    history = {}
    common = ["--demo_studies", "40", "--batch_size", "16", "--epochs", "1", "--geometry_interval", "0"]
    for mode, extra in (("cpu", []), ("device", ["--micro_batch_size", "8"])):
        root = tmp_path / mode
        result = run_bundle(
            root, tmp_path / "demo", tiny_bert_dir, *common, "--learning_rate", "0", "--augment_on", mode, *extra
        )
        assert result.returncode == 0, result.stderr[-4000:]
        history[mode] = json.loads((root / "eval" / "history.json").read_text())[0]
    assert history["cpu"]["iteration"] == history["device"]["iteration"] == 2
    for key in ("train_loss_align", "train_loss_orth"):
        assert history["device"][key] == pytest.approx(history["cpu"][key], rel=0.05), key

    root = tmp_path / "trains"
    result = run_bundle(root, tmp_path / "demo", tiny_bert_dir, "--augment_on", "device")
    assert result.returncode == 0, result.stderr[-4000:]
    trained = json.loads((root / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in trained] == [1, 2]
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in trained)
    assert trained[-1]["train_loss"] < trained[0]["train_loss"]
