"""The segmentation bundle's train.yaml takes what MONAI Label's bundle trainer overrides (issue #7, point 4).

MONAI Label 0.8.5's ``BundleTrainTask`` runs ``train.yaml`` with ``train#dataset#data`` / ``validate#dataset#data``
(the datastore's image/label pairs), ``train#handlers`` (the bundle's list, a ``CheckpointLoader`` into ``$@network``
first once a model exists), ``train#trainer#max_epochs``, ``device`` and ``bundle_root``;
``helpers.bundles.monailabel_train_overrides`` builds them the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.bundles import (
    FAST,
    TINY,
    bundle_copy,
    load_app_lib,
    make_tiny_encoder,
    monailabel_installed,
    monailabel_train_overrides,
    run_train_workflow,
    segmentation_datalist,
)
from mflag_monai.networks import build_segmentation_unet


@pytest.fixture(scope="module")
def siim(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Two training and one validation image with their masks."""
    data = segmentation_datalist(small_demo / "siim-pneumothorax", tmp_path_factory.mktemp("siim"))
    assert len(data["training"]) >= 2 and data["validation"]
    return {"training": data["training"][:2], "validation": data["validation"][:1]}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A segmentation bundle folder (the repository's configs) next to a tiny pre-trained encoder."""
    make_tiny_encoder(tmp_path / "bundles" / "pretrain" / "models" / "encoder.pt", TINY["image_depth"])
    return bundle_copy(tmp_path / "bundles", "segmentation")


def _train(bundle: Path, siim: dict, **extra: object) -> dict:
    overrides = monailabel_train_overrides(bundle, siim["training"], siim["validation"], max_epochs=1)
    workflow = run_train_workflow(bundle, **TINY, **FAST, **overrides, **extra)
    assert not workflow.check_properties(), "train.yaml lacks some of MONAI's train workflow properties"
    state = workflow.trainer.state
    assert (state.epoch, state.max_epochs) == (1, 1)  # train#trainer#max_epochs, not the bundle's epochs
    assert len(workflow.train_dataset) == len(siim["training"])  # train#dataset#data
    assert workflow.evaluator.state.metrics["val_dice"] >= 0.0  # validate#dataset#data, through the handlers
    return overrides


def test_trains_on_the_datastore_pairs_with_the_trainer_overrides(bundle: Path, siim: dict) -> None:
    first = _train(bundle, siim)
    targets = [h.get("_target_") for h in first["train#handlers"] if isinstance(h, dict)]
    assert (
        "CheckpointLoader" not in targets and "ValidationHandler" in targets
    )  # the bundle's list; no model to load yet
    model = bundle / "models" / "model.pt"
    state = torch.load(model, weights_only=True)
    build_segmentation_unet(depth=TINY["image_depth"]).load_state_dict(state)  # the validation-selected model
    # the datalist override replaced the bundle's own: nothing was prepared (the default dataset_dir is the demo)
    assert not list((bundle / "models").glob("datalist_*.json"))

    second = _train(bundle, siim)  # a second training request starts from the saved model
    loader = second["train#handlers"][0]
    assert loader["_target_"] == "CheckpointLoader" and loader["load_dict"] == {"model": "$@network"}
    assert model.is_file()


def test_the_network_override_is_what_trains(bundle: Path, siim: dict) -> None:
    encoder = torch.load(bundle.parent / "pretrain" / "models" / "encoder.pt", weights_only=True)
    network = (
        "$mflag_monai.networks.build_segmentation_unet(depth=@image_depth, out_channels=1, "
        "pretrained_encoder=@pretrained_encoder, freeze_encoder=False).to(@device)"
    )
    _train(bundle, siim, network=network)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    # the bundle's network keeps the encoder frozen; the override fine-tunes it
    assert any(not torch.equal(state[f"encoder.{k}"], v) for k, v in encoder.items() if v.is_floating_point())


@pytest.mark.skipif(not monailabel_installed(), reason="the monailabel extra is not installed")
def test_monailabel_bundle_train_task_runs_the_bundle(bundle: Path, siim: dict) -> None:
    load_app_lib()  # the app's ``lib``, as MONAI Label imports it
    from lib.trainers import SegmentationTrain

    class Datastore:  # the two methods BundleTrainTask calls
        def datalist(self) -> list[dict]:
            return siim["training"] + siim["validation"]

    task = SegmentationTrain(str(bundle), {}, overrides={**TINY, **FAST})
    assert task.is_valid()
    request = {"model": "segmentation", "max_epochs": 1, "val_split": 0.34, "device": "cpu", "multi_gpu": False}
    assert task(request, Datastore()) == {}
    build_segmentation_unet(depth=TINY["image_depth"]).load_state_dict(
        torch.load(bundle / "models" / "model.pt", weights_only=True)
    )
