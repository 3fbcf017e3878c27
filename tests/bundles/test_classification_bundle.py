"""The classification bundle from the command line on tiny demo settings: train, evaluate, inference, zero-shot,
retrieval, with an encoder from a (tiny) run of the pre-training bundle."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from helpers.bundles import check_selected_on_validation_loss, run_bundle_cli
from helpers.dicom import check_dicom_result
from helpers.mlflow_store import tracked_runs
from mflag_monai.dicom import read_classification_sr

REPO = Path(__file__).resolve().parents[2]
CLS = REPO / "bundles" / "classification" / "configs"
PRE = REPO / "bundles" / "pretrain" / "configs"
TINY = [
    "--image_depth",
    "18",
    "--image_size",
    "64",
    "--batch_size",
    "8",
    "--epochs",
    "2",
    "--num_workers",
    "0",
    "--fraction",
    "1.0",
]


def bundle(
    run_id: str, configs: list[Path], bundle_root: Path, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """A bundle run that must succeed (its output shown when it does not)."""
    result = run_bundle_cli(run_id, configs, bundle_root, *extra, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cls")
    env = {"MFLAG_MONAI_DEMO_DIR": str(root / "demo")}
    pre = root / "pretrain"
    bundle(
        "training",
        [PRE / "train.yaml"],
        pre,
        "--dataset_dir",
        "demo",
        "--demo_studies",
        "40",
        "--image_depth",
        "18",
        "--resize",
        "72",
        "--image_size",
        "64",
        "--batch_size",
        "4",
        "--epochs",
        "1",
        "--num_workers",
        "0",
        "--text_model",
        str(tiny_bert_dir),
        env=env,
    )
    cls = root / "classification"
    common = ["--dataset_dir", str(root / "demo" / "chexpert"), *TINY]
    bundle(
        "training",
        [CLS / "train.yaml"],
        cls,
        "--pretrained_encoder",
        str(pre / "models" / "encoder.pt"),
        *common,
        "--tracking",
        "mlflow",
    )
    return {"root": root, "pre": pre, "cls": cls, "common": common}


@pytest.mark.slow
def test_train_and_evaluate(ws) -> None:
    assert (ws["cls"] / "models" / "model.pt").is_file()
    bundle("evaluating", [CLS / "train.yaml", CLS / "evaluate.yaml"], ws["cls"], *ws["common"])
    report = json.loads((ws["cls"] / "eval" / "metrics.json").read_text())
    assert set(report["auroc"]) == {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"}
    assert report["split"] == "test" and 0.0 <= report["mean_auroc"] <= 1.0
    assert (ws["cls"] / "eval" / "roc.png").stat().st_size > 1000


@pytest.mark.slow
def test_evaluate_in_the_mgca_protocol(ws) -> None:
    """--metric_protocol mgca: MGCA's AUROC (a comparability mode), said so in the report."""
    log_dir = ws["cls"] / "eval_mgca"
    args = [*ws["common"], "--metric_protocol", "mgca", "--log_dir", str(log_dir)]
    bundle("evaluating", [CLS / "train.yaml", CLS / "evaluate.yaml"], ws["cls"], *args)
    report = json.loads((log_dir / "metrics.json").read_text())
    assert report["protocol"] == "mgca" == report["metric_protocol"]
    assert report["metric"].startswith("comparability mode")
    assert all(0.0 <= a <= 1.0 for a in report["auroc"].values()) and 0.0 <= report["mean_auroc"] <= 1.0


@pytest.mark.slow
def test_select_on_validation_loss(ws, tmp_path: Path) -> None:
    """--select_on val_loss (MGCA): models/model.pt is the epoch of the lowest validation loss; AUROC still logged."""
    root = tmp_path / "cls_val_loss"
    args = ["--pretrained_encoder", str(ws["pre"] / "models" / "encoder.pt"), *ws["common"], "--epochs", "3"]
    result = bundle("training", [CLS / "train.yaml"], root, *args, "--select_on", "val_loss")
    check_selected_on_validation_loss(root, result.stdout + result.stderr, "val_auroc")


@pytest.mark.slow
def test_mlflow_tracking_records_params_and_validation_metrics(ws) -> None:
    (run,) = tracked_runs(ws["cls"])
    assert run["experiment"] == "mflag_classification" and run["status"] == "FINISHED"
    assert run["params"]["freeze_encoder"] == "True" and run["params"]["dataset"] == "chexpert"
    assert {"train_loss", "val_auroc"} <= set(run["metrics"])
    assert "validation_history.json" in run["artifacts"]
    assert {"model.pt", "model.pt.sha256", "model.json"} <= set(run["artifacts"])  # the trained model and its record


@pytest.mark.slow
def test_inference_writes_a_csv(ws) -> None:
    images = ws["root"] / "demo" / "chexpert" / "CheXpert-v1.0-small" / "valid"
    bundle(
        "run",
        [CLS / "inference.yaml"],
        ws["cls"],
        "--input_path",
        str(images),
        "--image_depth",
        "18",
        "--image_size",
        "64",
    )
    rows = list(csv.reader((ws["cls"] / "eval" / "inference" / "predictions.csv").open()))
    uids = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    assert rows[0] == ["image", *uids, "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    assert len(rows) - 1 == len(list(images.rglob("*.jpg")))
    assert all(0.0 <= float(v) <= 1.0 for v in rows[1][4:]) and rows[1][1:4] == ["", "", ""]  # JPG: no UIDs
    # a second run writes beside the first one, which stays as it was
    before = (ws["cls"] / "eval" / "inference" / "predictions.csv").read_bytes()
    bundle(
        "run",
        [CLS / "inference.yaml"],
        ws["cls"],
        "--input_path",
        str(images),
        "--image_depth",
        "18",
        "--image_size",
        "64",
    )
    assert (ws["cls"] / "eval" / "inference" / "predictions.csv").read_bytes() == before
    assert (ws["cls"] / "eval" / "inference_2" / "predictions.csv").read_bytes() == before  # same model, same inputs


@pytest.mark.slow
def test_inference_writes_a_dicom_sr_per_dicom_input(ws, tmp_path: Path) -> None:
    """DICOM in: one TID 1500 SR per image beside the CSV, equal to its row (probabilities with the threshold), valid
    and referencing the image; the model's record (models/model.json) gives its size and depth."""
    dicoms = sorted((ws["root"] / "demo" / "siim-pneumothorax").rglob("*.dcm"))[:2]
    folder = tmp_path / "inputs"
    folder.mkdir()
    for image in dicoms:
        (folder / image.name).symlink_to(image)
    bundle("run", [CLS / "inference.yaml"], ws["cls"], "--input_path", str(folder),
           "--output_dir", str(tmp_path / "out"), "--threshold", "0.3")  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert rows and all(row["SOPInstanceUID"] for row in rows)
    names = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    for row in rows:
        image = Path(row["image"])
        sr = tmp_path / "out" / f"{image.stem}_sr.dcm"
        check_dicom_result(sr, image)
        expected = [{"label": n, "probability": float(row[n]), "threshold": 0.3} for n in names]
        assert read_classification_sr(sr) == expected


@pytest.mark.slow
def test_zero_shot_and_retrieval(ws) -> None:
    configs = [CLS / "train.yaml", CLS / "zero_shot.yaml"]
    extra = [*ws["common"], "--pretrain_models", str(ws["pre"] / "models")]
    bundle("zero_shot", configs, ws["cls"], *extra)
    report = json.loads((ws["cls"] / "eval" / "zero_shot.json").read_text())
    assert report["method"].startswith("zero-shot") and "Cardiomegaly" in report["prompts"]
    assert 0.0 <= report["auroc"]["Cardiomegaly"] <= 1.0
    bundle("retrieval", configs, ws["cls"], *extra)
    retrieval = json.loads((ws["cls"] / "eval" / "retrieval.json").read_text())
    for direction in ("image_to_text", "text_to_image"):
        r = retrieval[direction]
        assert 0.0 <= r["R@1"] <= r["R@5"] <= r["R@10"] <= 1.0


@pytest.mark.slow
def test_missing_encoder_is_explained(ws, tmp_path: Path) -> None:
    result = run_bundle_cli("training", [CLS / "train.yaml"], tmp_path, *ws["common"], timeout=300)
    assert result.returncode != 0 and "--pretrained_encoder null" in result.stderr
