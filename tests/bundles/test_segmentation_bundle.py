"""The segmentation bundle: train, evaluate and inference from the command line, on tiny demo settings."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from helpers.bundles import check_selected_on_validation_loss, downstream_workspace, run_bundle_cli
from helpers.dicom import check_dicom_result
from helpers.mlflow_store import tracked_runs
from mflag_monai.dicom import read_seg
from mflag_monai.networks import build_segmentation_unet

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "segmentation" / "configs"
TINY = [
    "--image_depth",
    "18",
    "--image_size",
    "64",
    "--batch_size",
    "4",
    "--epochs",
    "2",
    "--num_workers",
    "0",
    "--fraction",
    "1.0",
]


bundle = run_bundle_cli  # python -m monai.bundle run ..., as a user types it


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, demo_data) -> dict[str, Path]:
    ws = downstream_workspace(tmp_path_factory.mktemp("seg"), demo_data(40, 96))
    return {**ws, "siim": ws["demo"] / "siim-pneumothorax"}


@pytest.fixture(scope="module")
def trained(workspace) -> dict[str, Path]:
    args = ["--dataset_dir", str(workspace["siim"]), "--pretrained_encoder", str(workspace["encoder"]), *TINY]
    result = bundle("training", [str(CONFIGS / "train.yaml")], workspace["bundle"], *args, "--tracking", "mlflow")
    assert result.returncode == 0, result.stderr[-5000:]
    return workspace


@pytest.mark.slow
def test_train_selects_a_model_with_the_frozen_pretrained_encoder(trained) -> None:
    models = trained["bundle"] / "models"
    state = torch.load(models / "model.pt", weights_only=True)
    net = build_segmentation_unet(depth=18)
    net.load_state_dict(state)
    encoder = torch.load(trained["encoder"], weights_only=True)
    for key, value in encoder.items():  # frozen: the encoder weights are still the pre-trained ones
        assert torch.equal(state[f"encoder.{key}"], value), key
    assert list(models.glob("datalist_siim-pneumothorax_1.0.json"))


@pytest.mark.slow
def test_mlflow_tracking_records_params_and_validation_metrics(trained) -> None:
    (run,) = tracked_runs(trained["bundle"])
    assert run["experiment"] == "mflag_segmentation" and run["status"] == "FINISHED"
    assert run["params"]["learning_rate"] == "0.0005" and run["params"]["image_depth"] == "18"
    assert {"train_loss", "val_dice"} <= set(run["metrics"])
    assert "validation_history.json" in run["artifacts"]
    assert {"model.pt", "model.pt.sha256", "model.json"} <= set(run["artifacts"])  # the trained model and its record


@pytest.mark.slow
def test_evaluate_writes_metrics_and_overlays(trained) -> None:
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")]
    result = bundle("evaluating", configs, trained["bundle"], "--dataset_dir", str(trained["siim"]), *TINY,
                    "--tracking", "mlflow")  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    metrics = json.loads((trained["bundle"] / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0.0 <= metrics["metrics"]["val_dice"] <= 1.0
    assert (trained["bundle"] / "eval" / "overlays.png").stat().st_size > 1000
    # the evaluation's MLflow run holds its results and is closed, not left RUNNING
    (run,) = [r for r in tracked_runs(trained["bundle"]) if "metrics.json" in r["artifacts"]]
    assert run["status"] == "FINISHED" and "val_dice" in run["metrics"]


@pytest.mark.slow
def test_evaluate_in_the_mgca_protocol(trained) -> None:
    """--metric_protocol mgca: MGCA's mean of batch means (a comparability mode), said so in the metrics file."""
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")]
    log_dir = trained["bundle"] / "eval_mgca"
    args = ["--dataset_dir", str(trained["siim"]), *TINY, "--metric_protocol", "mgca", "--log_dir", str(log_dir)]
    result = bundle("evaluating", configs, trained["bundle"], *args)
    assert result.returncode == 0, result.stderr[-5000:]
    metrics = json.loads((log_dir / "metrics.json").read_text())
    assert metrics["metric_protocol"] == "mgca" and metrics["metric"].startswith("comparability mode")
    assert metrics["batch_size"] == 4 and 0.0 <= metrics["metrics"]["val_dice"] <= 1.0


@pytest.mark.slow
def test_inference_writes_masks_of_the_input_size(trained) -> None:
    images = sorted(trained["siim"].rglob("*.dcm"))[:3]
    folder = trained["root"] / "inputs"
    folder.mkdir()
    for image in images:
        (folder / image.name).symlink_to(image)
    png = folder / "export.png"
    Image.fromarray(np.zeros((70, 90), np.uint8)).save(png)  # a non-square PNG export
    # no --image_size / --image_depth: the model's record (models/model.json) says it is a 64-px ResNet-18 model
    result = bundle("run", [str(CONFIGS / "inference.yaml")], trained["bundle"], "--input_path", str(folder))
    assert result.returncode == 0, result.stderr[-5000:]
    assert json.loads((trained["bundle"] / "models" / "model.json").read_text())["image_depth"] == 18
    out = trained["bundle"] / "eval" / "inference"
    assert len(list(out.glob("*_mask.png"))) == 4
    mask = Image.open(out / "export_mask.png")
    assert mask.size == (90, 70)
    assert nib.load(out / "export_mask.nii.gz").shape == (90, 70)  # x = columns, y = rows
    stem = images[0].name[: -len(".dcm")]
    assert (out / f"{stem}_mask.png").is_file()
    # one DICOM SEG per DICOM input (none for the PNG), valid, equal to its mask, referencing its image; one series
    segs = sorted(out.glob("*_seg.dcm"))
    assert len(segs) == 3 and not (out / "export_seg.dcm").exists()
    for seg in segs:
        stem = seg.name[: -len("_seg.dcm")]
        masks = read_seg(seg)
        assert list(masks) == ["pneumothorax"]  # the record's dataset names the finding
        assert np.array_equal(masks["pneumothorax"], np.asarray(Image.open(out / f"{stem}_mask.png")) > 0)
        check_dicom_result(seg, folder / f"{stem}.dcm")
    assert len({pydicom.dcmread(seg, stop_before_pixels=True).SeriesInstanceUID for seg in segs}) == 1


@pytest.mark.slow
def test_a_copy_outside_the_repository_runs_inference_from_its_own_folder(trained, tmp_path: Path) -> None:
    """The bundle folder alone (as `monai.bundle download` unpacks it) and its trained model: no --bundle_root, run from
    that folder. Outputs carry the DICOM UIDs; a second run writes beside the first, not over it."""
    import shutil

    import pydicom

    copy = tmp_path / "segmentation"
    # the bundle's own files only: a developer's local training outputs in the repository must not leak in
    shutil.copytree(
        REPO / "bundles" / "segmentation", copy, ignore=shutil.ignore_patterns("models", "eval", "datalists", "cache")
    )
    (copy / "models").mkdir()
    shutil.copy(trained["bundle"] / "models" / "model.pt", copy / "models" / "model.pt")
    image = sorted(trained["siim"].rglob("*.dcm"))[0]
    options = ["--input_path", str(image), "--image_depth", "18", "--image_size", "64"]
    for run in ("inference", "inference_2"):
        result = bundle(None, ["configs/inference.yaml"], None, *options, cwd=copy)  # from the bundle folder
        assert result.returncode == 0, result.stderr[-5000:]
        out = copy / "eval" / run
        stem = image.name[: -len(".dcm")]
        assert (out / f"{stem}_mask.png").is_file() and (out / f"{stem}_mask.nii.gz").is_file()
        record = json.loads((out / f"{stem}_mask.json").read_text())
        ds = pydicom.dcmread(image, stop_before_pixels=True)
        assert record["SOPInstanceUID"] == ds.SOPInstanceUID and record["StudyInstanceUID"] == ds.StudyInstanceUID
        assert record["SeriesInstanceUID"] == ds.SeriesInstanceUID and record["image"] == str(image)
    assert "holds an earlier run's outputs" in result.stdout + result.stderr


@pytest.mark.slow
def test_missing_encoder_says_how_to_make_it(workspace, tmp_path: Path) -> None:
    args = ["--dataset_dir", str(workspace["siim"]), "--pretrained_encoder", str(tmp_path / "nope.pt"), *TINY]
    result = bundle("training", [str(CONFIGS / "train.yaml")], tmp_path / "b", *args)
    assert result.returncode != 0
    assert (
        "bundles/pretrain/configs/train.yaml" in result.stderr
        and "--pretrained_encoder null for a random encoder" in result.stderr
    )
    assert "Run the pretrain bundle first" in result.stderr


@pytest.mark.slow
def test_random_encoder_on_purpose(workspace, tmp_path: Path) -> None:
    args = ["--dataset_dir", str(workspace["siim"]), "--pretrained_encoder", "null", *TINY, "--epochs", "1"]
    result = bundle("training", [str(CONFIGS / "train.yaml")], tmp_path / "b", *args)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.slow
def test_resume_continues_after_the_last_checkpoint(trained) -> None:
    # runs after the evaluate/inference tests (same module): it adds one epoch to the trained bundle
    checkpoints = trained["bundle"] / "models" / "checkpoints"
    assert [p.name for p in sorted(checkpoints.glob("*.pt"))] == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    state = torch.load(checkpoints / "checkpoint_epoch=2.pt", weights_only=True)
    assert {"network", "optimizer", "best_model", "trainer"} <= set(state) and state["trainer"][
        "iteration"
    ] == 2 * state["trainer"]["epoch_length"]
    args = [
        "--dataset_dir",
        str(trained["siim"]),
        "--pretrained_encoder",
        str(trained["encoder"]),
        *TINY,
        "--epochs",
        "3",
        "--resume",
        "true",
    ]
    result = bundle("training", [str(CONFIGS / "train.yaml")], trained["bundle"], *args)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Resuming from" in result.stdout and "checkpoint_epoch=2.pt" in result.stdout
    history = json.loads((trained["bundle"] / "eval" / "validation_history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]  # epoch 3 only: the resumed run did not start over
    resumed = torch.load(checkpoints / "checkpoint_epoch=3.pt", weights_only=True)
    assert (
        resumed["trainer"]["iteration"] == 3 * resumed["trainer"]["epoch_length"]
        and resumed["best_model"]["best_metric"] >= state["best_model"]["best_metric"]
    )
    assert not list(checkpoints.glob(".*.tmp"))


@pytest.mark.slow
def test_select_on_validation_loss(workspace, tmp_path: Path) -> None:
    """--select_on val_loss (MGCA): models/model.pt is the epoch of the lowest validation loss."""
    args = ["--dataset_dir", str(workspace["siim"]), "--pretrained_encoder", "null", *TINY, "--epochs", "3"]
    result = bundle("training", [str(CONFIGS / "train.yaml")], tmp_path / "b", *args, "--select_on", "val_loss")
    assert result.returncode == 0, result.stderr[-4000:]
    check_selected_on_validation_loss(tmp_path / "b", result.stdout + result.stderr, "val_dice")
