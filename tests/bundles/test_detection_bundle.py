"""The detection bundle: train, evaluate and inference from the command line, on tiny demo settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.bundles import check_selected_on_validation_loss, downstream_workspace, run_bundle_cli
from helpers.dicom import check_dicom_result
from helpers.mlflow_store import tracked_runs
from mflag_monai.dicom import read_detection_sr
from mflag_monai.networks import build_retinanet

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "detection" / "configs"
NET = ["--image_depth", "18", "--image_size", "64", "--fpn_channels", "16"]
TINY = [*NET, "--batch_size", "4", "--epochs", "2", "--num_workers", "0", "--fraction", "1.0"]


bundle = run_bundle_cli  # python -m monai.bundle run ..., as a user types it


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, demo_data) -> dict[str, Path]:
    ws = downstream_workspace(tmp_path_factory.mktemp("det"), demo_data(40, 96))
    return {**ws, "rsna": ws["demo"] / "rsna-pneumonia"}


@pytest.fixture(scope="module")
def trained(workspace) -> dict[str, Path]:
    args = ["--dataset_dir", str(workspace["rsna"]), "--pretrained_encoder", str(workspace["encoder"]), *TINY]
    result = bundle("training", [str(CONFIGS / "train.yaml")], workspace["bundle"], *args, "--tracking", "mlflow")
    assert result.returncode == 0, result.stderr[-5000:]
    return workspace


@pytest.mark.slow
def test_train_selects_a_model_with_the_frozen_pretrained_encoder(trained) -> None:
    models = trained["bundle"] / "models"
    state = torch.load(models / "model.pt", weights_only=True)
    build_retinanet(depth=18, fpn_channels=16).load_state_dict(state)  # the network_def's weights, as exported
    encoder = torch.load(trained["encoder"], weights_only=True)
    for key, value in encoder.items():  # frozen: the encoder weights are still the pre-trained ones
        assert torch.equal(state[f"feature_extractor.encoder.{key}"], value), key
    datalist = json.loads((models / "datalist_rsna-pneumonia_1.0.json").read_text())
    assert datalist["summary"]["task"] == "detection" and any(e["boxes"] for e in datalist["training"])


@pytest.mark.slow
def test_mlflow_tracking_records_params_losses_and_validation_map(trained) -> None:
    (run,) = tracked_runs(trained["bundle"])
    assert run["experiment"] == "mflag_detection" and run["status"] == "FINISHED"
    assert run["params"]["nms_threshold"] == "0.5" and run["params"]["fpn_channels"] == "16"
    assert {"val_map", "loss"} <= set(run["metrics"])
    assert "validation_history.json" in run["artifacts"]
    assert {"model.pt", "model.pt.sha256", "model.json"} <= set(run["artifacts"])  # the trained model and its record


@pytest.mark.slow
def test_evaluate_writes_map_per_iou_and_overlays(trained) -> None:
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")]
    result = bundle("evaluating", configs, trained["bundle"], "--dataset_dir", str(trained["rsna"]), *TINY)
    assert result.returncode == 0, result.stderr[-5000:]
    report = json.loads((trained["bundle"] / "eval" / "metrics.json").read_text())
    assert report["split"] == "test" and 0.0 <= report["mAP"] <= 1.0 and report["metrics"]["val_map"] == report["mAP"]
    assert list(report["ap_per_iou"]) == ["0.40", "0.45", "0.50", "0.55", "0.60", "0.65", "0.70", "0.75"]
    assert report["true_boxes"] > 0 and report["images"] == len(json.loads(
        (trained["bundle"] / "models" / "datalist_rsna-pneumonia_1.0.json").read_text())["test"])  # fmt: skip
    overlays = sorted((trained["bundle"] / "eval" / "overlays").glob("*_boxes.png"))
    assert overlays and len(overlays) == len(report["overlays"]) and overlays[0].stat().st_size > 1000


@pytest.mark.slow
def test_evaluate_in_the_mgca_protocol(trained) -> None:
    """--metric_protocol mgca: MGCA's evaluation (a comparability mode), said so in the report."""
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")]
    log_dir = trained["bundle"] / "eval_mgca"
    args = ["--dataset_dir", str(trained["rsna"]), *TINY, "--metric_protocol", "mgca", "--log_dir", str(log_dir)]
    result = bundle("evaluating", configs, trained["bundle"], *args)
    assert result.returncode == 0, result.stderr[-5000:]
    report = json.loads((log_dir / "metrics.json").read_text())
    assert report["protocol"] == "mgca" == report["metric_protocol"]
    assert report["metric"].startswith("comparability mode")
    datalist = json.loads((trained["bundle"] / "models" / "datalist_rsna-pneumonia_1.0.json").read_text())
    test_images = len(datalist["test"])
    assert report["images"] + report["images_skipped"] == test_images
    assert report["images"] == 0 or 0.0 <= report["mAP"] <= 1.0
    assert report["metrics"]["val_map"] == report["mAP"] or report["images"] == 0


@pytest.mark.slow
def test_inference_writes_boxes_in_the_input_pixels(trained) -> None:
    dicoms = sorted((trained["rsna"] / "stage_2_train_images").glob("*.dcm"))[:2]
    folder = trained["root"] / "inputs"
    folder.mkdir()
    for image in dicoms:
        (folder / image.name).symlink_to(image)
    Image.fromarray(np.full((70, 90), 100, np.uint8)).save(folder / "export.png")  # a non-square PNG export
    # no --image_size/--image_depth/--fpn_channels: the model's record (models/model.json) gives them
    args = ["--input_path", str(folder), "--score_threshold", "0.0"]  # low threshold: boxes to check
    result = bundle("run", [str(CONFIGS / "inference.yaml")], trained["bundle"], *args)
    assert result.returncode == 0, result.stderr[-5000:]
    out = trained["bundle"] / "eval" / "inference"
    assert len(list(out.glob("*_boxes.json"))) == 3 and len(list(out.glob("*_boxes.png"))) == 3
    record = json.loads((out / "export_boxes.json").read_text())
    assert (record["rows"], record["columns"]) == (70, 90) and record["boxes"]
    boxes = np.array([b["box"] for b in record["boxes"]])
    assert boxes[:, 2].max() <= 90 and boxes[:, 3].max() <= 70 and boxes[:, 2].max() > 64  # original pixels, x = column
    assert record["boxes"][0]["label_name"] == "opacity"
    assert record["SOPInstanceUID"] == record["StudyInstanceUID"] == ""  # a PNG has no DICOM identifiers
    import pydicom

    ds = pydicom.dcmread(dicoms[0], stop_before_pixels=True)
    record = json.loads((out / f"{dicoms[0].stem}_boxes.json").read_text())
    assert (record["StudyInstanceUID"], record["SeriesInstanceUID"], record["SOPInstanceUID"]) == (
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
    )
    # a DICOM SR per DICOM input with the JSON's boxes and scores, valid and referencing its image
    assert not (out / "export_sr.dcm").exists()
    for image in dicoms:
        sr = out / f"{image.stem}_sr.dcm"
        check_dicom_result(sr, image)
        boxes = json.loads((out / f"{image.stem}_boxes.json").read_text())["boxes"]
        expected = [{"label": b["label_name"], "score": b["score"], "box": tuple(b["box"])} for b in boxes]
        read = read_detection_sr(sr)
        assert [(r["label"], r["score"]) for r in read] == [(e["label"], e["score"]) for e in expected]
        # SCOORD holds float32: the JSON's 2-decimal corners come back within float32's rounding
        assert np.allclose([r["box"] for r in read], [e["box"] for e in expected], rtol=0, atol=1e-4)


def test_default_encoder_path_missing_or_null_on_purpose(workspace, tmp_path: Path) -> None:
    """In-process (a config parse, no run): the default encoder beside a fresh bundle is missing and the error says how
    to make it; ``pretrained_encoder: null`` builds a random encoder on purpose."""
    from monai.bundle import ConfigWorkflow

    def network(**override: object) -> object:
        workflow = ConfigWorkflow(
            config_file=str(CONFIGS / "train.yaml"), meta_file=str(CONFIGS / "metadata.json"), logging_file=False,
            workflow_type="train", bundle_root=str(tmp_path / "b"), image_depth=18, fpn_channels=16, **override,
        )  # fmt: skip
        return workflow.parser.get_parsed_content("network_def")

    with pytest.raises(RuntimeError) as info:
        network()
    message = str(info.value.__cause__)
    assert str(tmp_path / "b" / ".." / "pretrain" / "models" / "encoder.pt") in message
    assert "bundles/pretrain/configs/train.yaml" in message and "--pretrained_encoder null" in message
    assert "Run the pretrain bundle first" in message and "metadata.json: pretrained_encoder" in message
    assert network(pretrained_encoder=None).feature_extractor.freeze_encoder


@pytest.mark.slow
def test_resume_continues_after_the_last_checkpoint(trained) -> None:
    checkpoints = trained["bundle"] / "models" / "checkpoints"
    args = [
        "--dataset_dir",
        str(trained["rsna"]),
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
    assert "checkpoint_epoch=2.pt" in result.stdout
    history = json.loads((trained["bundle"] / "eval" / "validation_history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    state = torch.load(checkpoints / "checkpoint_epoch=3.pt", weights_only=True)
    assert {"network", "optimizer", "best_model", "trainer"} <= set(state)


@pytest.mark.slow
def test_select_on_validation_loss(workspace, tmp_path: Path) -> None:
    """--select_on val_loss (MGCA): models/model.pt is the epoch of the lowest validation loss."""
    args = ["--dataset_dir", str(workspace["rsna"]), "--pretrained_encoder", "null", *TINY, "--epochs", "3"]
    result = bundle("training", [str(CONFIGS / "train.yaml")], tmp_path / "b", *args, "--select_on", "val_loss")
    assert result.returncode == 0, result.stderr[-4000:]
    check_selected_on_validation_loss(tmp_path / "b", result.stdout + result.stderr, "val_map")
