"""The pre-training bundle, run the way a user types it, on tiny settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from helpers.bundles import run_bundle_cli
from helpers.mlflow_store import tracked_runs
from mflag_monai.networks import build_image_encoder, load_weights_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "bundles" / "pretrain" / "configs" / "train.yaml"
EVALUATE = REPO / "bundles" / "pretrain" / "configs" / "evaluate.yaml"
GEOMETRY = {
    "geom_erank_feature",
    "geom_erank_image_proj",
    "geom_erank_text_proj",
    "geom_alignment",
    "geom_uniformity_image",
    "geom_uniformity_text",
}


def run_bundle(
    bundle_root: Path,
    demo_dir: Path,
    text_model: Path,
    *extra: str,
    run_id: str = "training",
    configs: tuple[Path, ...] = (CONFIG,),
) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` with tiny overrides; the demo data goes to ``demo_dir``."""
    tiny = [
        "--dataset_dir",
        "demo",
        "--demo_studies",
        "24",
        "--image_depth",
        "18",
        "--resize",
        "72",
        "--image_size",
        "64",
        "--batch_size",
        "4",
        "--epochs",
        "2",
        "--num_workers",
        "0",
        "--learning_rate",
        "0.001",
        "--text_model",
        str(text_model),
    ]
    return run_bundle_cli(run_id, configs, bundle_root, *tiny, *extra, env={"MFLAG_MONAI_DEMO_DIR": str(demo_dir)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("pretrain_bundle")
    result = run_bundle(root / "bundle", root / "demo", tiny_bert_dir, "--tracking", "mlflow")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return root / "bundle", result


@pytest.mark.slow
def test_run_generates_demo_and_trains(trained) -> None:
    bundle_root, result = trained
    output = result.stdout + result.stderr
    assert "Prepared mimic-cxr datalist" in output
    assert "Pre-training" in output and "loss_orth" in output  # the progress bar shows the loss terms
    assert "BatchNorm statistics re-estimated on" in output  # before the geometry, checkpoints and export
    history = json.loads((bundle_root / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"train_loss_align", "train_loss_orth"} <= set(history[0])
    assert list((bundle_root / "eval").glob("events.out.tfevents.*")), "no TensorBoard log"


@pytest.mark.slow
def test_mlflow_tracking_records_params_metrics_and_files(trained) -> None:
    bundle_root, _ = trained
    (run,) = tracked_runs(bundle_root)
    assert run["experiment"] == "mflag_pretrain" and run["status"] == "FINISHED"
    assert run["params"]["orth_lambda"] == "0.0051" and run["params"]["batch_size"] == "4"
    assert {"train_loss", "train_loss_align", "train_loss_orth"} <= set(run["metrics"])
    assert {"history.json", "encoder.json"} <= set(run["artifacts"])
    assert not any(len(v) > 500 for v in run["params"].values())  # settings only: no datalist, no report text


@pytest.mark.slow
def test_latent_geometry_is_logged_everywhere(trained) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    bundle_root, _ = trained
    history = json.loads((bundle_root / "eval" / "history.json").read_text())
    assert all(GEOMETRY <= set(h) for h in history)  # geometry_interval 1: every epoch
    events = EventAccumulator(str(bundle_root / "eval"))
    events.Reload()
    assert GEOMETRY <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("geom_erank_feature")] == [1, 2]
    (run,) = tracked_runs(bundle_root)
    assert GEOMETRY <= set(run["metrics"]) and {"spectrum.json", "spectrum.png"} <= set(run["artifacts"])
    spectrum = json.loads((bundle_root / "eval" / "spectrum.json").read_text())
    assert spectrum["epoch"] == 2 and spectrum["metrics"]["geom_erank_feature"] == pytest.approx(
        history[-1]["geom_erank_feature"]
    )


@pytest.mark.slow
def test_evaluate_writes_geometry_of_the_test_split(trained, tiny_bert_dir: Path) -> None:
    bundle_root, _ = trained
    result = run_bundle(
        bundle_root,
        bundle_root.parent / "demo",
        tiny_bert_dir,
        run_id="evaluating",
        configs=(CONFIG, EVALUATE),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((bundle_root / "eval" / "geometry.json").read_text())
    assert report["split"] == "test" and report["num_samples"] >= 2 and set(report["metrics"]) == GEOMETRY
    assert report["checkpoint"].endswith("model.pt") and (bundle_root / "eval" / "spectrum.png").is_file()


@pytest.mark.slow
def test_outputs_load(trained) -> None:
    bundle_root, _ = trained
    models = bundle_root / "models"
    encoder = build_image_encoder(18, pretrained_weights=models / "encoder.pt")
    assert encoder.feature_dim == 512
    info = json.loads((models / "encoder.json").read_text())
    assert info["image_depth"] == 18 and info["epoch"] == 2 and "depth" not in info  # one name for the depth
    checkpoints = sorted((models / "checkpoints").glob("checkpoint_epoch=*.pt"))
    assert len(checkpoints) == 2
    for ckpt in checkpoints:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert {"network", "optimizer", "lr_scheduler", "trainer"} <= set(state)
        assert not any(k.startswith("text_encoder") for k in state["network"])
    final = load_weights_file(models / "model.pt")
    assert torch.equal(final["image_encoder.conv1.weight"], encoder.conv1.weight)


@pytest.mark.slow
def test_run_id_run_is_the_same_entry(tmp_path: Path, tiny_bert_dir: Path) -> None:
    result = run_bundle(tmp_path / "b", tmp_path / "demo", tiny_bert_dir, "--epochs", "1", run_id="run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "b" / "models" / "encoder.pt").is_file()


@pytest.mark.slow
def test_resume_continues_from_the_newest_checkpoint(trained, tiny_bert_dir: Path) -> None:
    bundle_root, _ = trained
    demo_dir = bundle_root.parent / "demo"
    result = run_bundle(bundle_root, demo_dir, tiny_bert_dir, "--epochs", "3", "--resume", "true")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "checkpoint_epoch=2.pt" in result.stdout + result.stderr
    history = json.loads((bundle_root / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[2]["iteration"] == history[1]["iteration"] + (history[1]["iteration"] - history[0]["iteration"])
    state = torch.load(bundle_root / "models" / "checkpoints" / "checkpoint_epoch=3.pt", weights_only=True)
    assert state["trainer"]["iteration"] == history[2]["iteration"]


@pytest.mark.slow
def test_micro_batches_keep_the_loss_of_the_whole_batch(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """Learning rate 0: the first epoch's alignment loss is the same whether the encoder sees 4 or 16 images a pass
    (only the encoder's BatchNorm statistics differ, per micro-batch)."""
    history = {}
    for micro in (4, 16):
        result = run_bundle(
            tmp_path / f"micro{micro}",
            tmp_path / "demo",
            tiny_bert_dir,
            "--demo_studies",
            "40",
            "--batch_size",
            "16",
            "--micro_batch_size",
            str(micro),
            "--learning_rate",
            "0",
            "--epochs",
            "1",
            "--geometry_interval",
            "0",
        )
        assert result.returncode == 0, result.stderr[-4000:]
        output = result.stdout + result.stderr
        # the demo says why its batch sits at the floor (batch 16 against 512 features), as INFO, not a warning
        assert "Demo run: batches of 16 features of width 512" in output and "floor (34.9" in output
        assert "--micro_batch_size" in output and "cannot go below" not in output
        history[micro] = json.loads((tmp_path / f"micro{micro}" / "eval" / "history.json").read_text())[0]
    assert history[4]["iteration"] == history[16]["iteration"] == 2  # 32 training pairs in batches of 16
    assert history[4]["train_loss_align"] == pytest.approx(history[16]["train_loss_align"], rel=0.05)
    assert history[4]["train_loss_orth_floor"] == pytest.approx(34.948, abs=1e-3)


@pytest.mark.slow
def test_a_batch_larger_than_the_data_says_what_to_do(tmp_path: Path, tiny_bert_dir: Path) -> None:
    result = run_bundle(
        tmp_path / "b",
        tmp_path / "demo",
        tiny_bert_dir,
        "--batch_size",
        "512",
        "--micro_batch_size",
        "16",
        "--epochs",
        "1",
    )
    assert result.returncode != 0
    assert "batch_size 512 is larger than the" in result.stderr and "--demo_studies" in result.stderr


@pytest.mark.slow
def test_inference_writes_embeddings_with_identifiers_and_scores_reports(trained, tmp_path: Path) -> None:
    """configs/inference.yaml on the trained bundle: the settings come from models/encoder.json; DICOM and PNG in."""
    import csv

    import numpy as np
    import pydicom
    from PIL import Image

    bundle_root, _ = trained
    files = bundle_root.parent / "demo" / "mimic-cxr" / "files"
    dicoms = sorted(files.rglob("*.dcm"))[:3]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for image in dicoms:
        (inputs / image.name).symlink_to(image)
    Image.fromarray(np.full((80, 60), 128, np.uint8)).save(inputs / "export.png")
    reports = tmp_path / "reports.csv"
    with reports.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "report"])
        for image in dicoms:  # the study's report, named by the image's file name
            writer.writerow([image.name, (image.parent.parent / f"{image.parent.name}.txt").read_text()])
    config = str(REPO / "bundles" / "pretrain" / "configs" / "inference.yaml")
    result = run_bundle_cli(None, [config], bundle_root, "--input_path", str(inputs), "--reports", str(reports))
    assert result.returncode == 0, result.stderr[-5000:]
    out = bundle_root / "eval" / "inference"
    index = list(csv.DictReader((out / "embeddings.csv").open()))
    assert [Path(r["image"]).name for r in index] == sorted(p.name for p in inputs.iterdir())
    arrays = np.load(out / "embeddings.npz")
    assert arrays["feature"].shape == (4, 512) and arrays["projection"].shape == (4, 1024)  # ResNet-18, projector
    for i, row in enumerate(index):
        single = np.load(out / row["file"])
        assert np.array_equal(single["feature"], arrays["feature"][i]) and str(single["image"]) == row["image"]
        if row["image"].endswith(".png"):
            assert row["SOPInstanceUID"] == row["StudyInstanceUID"] == ""
            continue
        ds = pydicom.dcmread(row["image"], stop_before_pixels=True)
        assert (row["StudyInstanceUID"], row["SeriesInstanceUID"], row["SOPInstanceUID"]) == (
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
        )
        assert str(single["SOPInstanceUID"]) == ds.SOPInstanceUID
    scored = list(csv.DictReader((out / "similarity.csv").open()))
    assert len(scored) == 3 and all(-1.0 <= float(r["similarity"]) <= 1.0 for r in scored)
    summary = json.loads((out / "similarity.json").read_text())
    assert summary["num_images"] == 3 and summary["num_images_without_report"] == 1
    assert set(summary["image_to_text"]) == {"R@1", "R@5", "R@10"}


@pytest.mark.slow
def test_no_report_text_under_cache_eval_or_models(trained) -> None:
    bundle_root, _ = trained
    datalist = json.loads((bundle_root / "datalists" / "datalist_pretrain.json").read_text())
    reports = {e["report"] for split in ("training", "validation", "test") for e in datalist.get(split, [])}
    assert len(reports) > 10
    checked = 0
    for folder in ("cache", "eval", "models"):
        for path in (bundle_root / folder).rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                leaked = [r for r in reports if r.encode() in content]
                assert not leaked, f"report text in {path.relative_to(bundle_root)}: {leaked[0][:60]!r}"
                checked += 1
    assert checked > 10 and list((bundle_root / "cache" / "images").rglob("*.pt"))


@pytest.mark.slow
def test_infonce_with_a_frozen_text_projector_through_the_cli(trained, tmp_path: Path, tiny_bert_dir: Path) -> None:
    bundle_root, _ = trained
    demo_dir = bundle_root.parent / "demo"  # the demo the trained fixture generated
    root = tmp_path / "infonce"
    result = run_bundle(
        root, demo_dir, tiny_bert_dir, "--objective", "infonce", "--learn_temperature", "true",
        "--freeze_text_projector", "true", "--geometry_interval", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    history = json.loads((root / "eval" / "history.json").read_text())
    assert {"train_loss", "train_loss_image_to_text", "train_loss_text_to_image", "train_temperature"} <= set(
        history[0]
    )
    assert not any(k.startswith("train_loss_orth") for k in history[0])  # no M-FLAG names wired in
    first, last = (
        torch.load(root / "models" / "checkpoints" / f"checkpoint_epoch={e}.pt", weights_only=True) for e in (1, 2)
    )
    for name, value in first["network"].items():
        if name.startswith("text_projector.") and "running" not in name and "num_batches" not in name:
            assert torch.equal(last["network"][name], value), f"{name} moved"
    assert not torch.equal(last["network"]["image_projector.0.weight"], first["network"]["image_projector.0.weight"])
    assert last["objective"]["log_scale"].item() != pytest.approx(first["objective"]["log_scale"].item(), abs=1e-9)
    info = json.loads((root / "models" / "encoder.json").read_text())
    assert info["objective"] == "infonce" and info["freeze_text_projector"] is True


@pytest.mark.slow
def test_unknown_objective_is_one_line(tmp_path: Path, tiny_bert_dir: Path) -> None:
    result = run_bundle(
        tmp_path / "b", tmp_path / "demo", tiny_bert_dir, "--objective", "simclr", "--demo_studies", "12"
    )
    assert result.returncode != 0
    assert "unknown objective 'simclr'" in result.stdout + result.stderr


def overwrite_inside(path: Path, size: int = 4096) -> None:
    """4 KB of other bytes in the middle of the file, its size unchanged (a bad block, a stray write)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start : start + size] = bytes((i * 7 + 1) % 251 for i in range(size))
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_damaged_weights_are_never_used(trained, tmp_path: Path, tiny_bert_dir: Path) -> None:
    import shutil

    source, _ = trained
    root = tmp_path / "bundle"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("eval", "mlruns*"))
    overwrite_inside(root / "models" / "model.pt")
    config = str(REPO / "bundles" / "pretrain" / "configs" / "inference.yaml")
    files = source.parent / "demo" / "mimic-cxr" / "files"
    inference = run_bundle_cli(None, [config], root, "--input_path", str(next(files.rglob("*.dcm"))))
    assert inference.returncode == 2, inference.stderr[-3000:]
    line = inference.stderr.strip().splitlines()[-1]
    assert line.startswith("error: checksum mismatch") and str(root / "models" / "model.pt") in line
    assert not (root / "eval" / "inference" / "embeddings.npz").exists()
    *previous, newest = sorted((root / "models" / "checkpoints").glob("checkpoint_epoch=*.pt"))
    overwrite_inside(newest)
    epochs = int(newest.stem.split("=")[1]) + 1
    resumed = run_bundle(root, source.parent / "demo", tiny_bert_dir, "--epochs", str(epochs), "--resume", "true")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    output = resumed.stdout + resumed.stderr
    assert "checksum mismatch" in output and newest.name in output
    assert f"Resuming from {previous[-1]}" in output
