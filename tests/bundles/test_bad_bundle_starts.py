"""Bad bundle starts, run the way a user types them: each ends in one ``error: ...`` line naming the entry or folder
(exit code != 0, the traceback only with ``--debug true``), or, with ``--skip_bad_images true``, in a run that leaves
the bad validation image out and counts it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.bundles import run_bundle_cli
from mflag_monai.data import get_preparer

REPO = Path(__file__).resolve().parents[2]
PRE = REPO / "bundles" / "pretrain" / "configs" / "train.yaml"
CLS = REPO / "bundles" / "classification" / "configs" / "train.yaml"
TINY_CLS = ["--image_depth", "18", "--image_size", "64", "--batch_size", "2", "--epochs", "1", "--num_workers", "0",
            "--pretrained_encoder", "null"]  # fmt: skip


def run(config: Path, bundle_root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_bundle_cli("training", [config], bundle_root, *extra)


def last_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr[-3000:]
    return line


@pytest.fixture(scope="module")
def entries(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    prepared = get_preparer("chexpert")(small_demo / "chexpert", out=tmp_path_factory.mktemp("cx") / "c.json")
    found = [e for split in prepared.datalist.values() for e in split]
    assert len(found) >= 7
    return found


@pytest.mark.slow
def test_pretrain_datalist_with_a_bad_entry(tmp_path: Path, entries: list[dict], tiny_bert_dir: Path) -> None:
    datalist = tmp_path / "dl.json"
    pairs = [{"image": e["image"], "report": f"report {i}"} for i, e in enumerate(entries[:4])]
    pairs[2]["report"] = None
    datalist.write_text(json.dumps({"training": pairs}))
    common = ["--dataset_dir", str(datalist), "--image_depth", "18", "--text_model", str(tiny_bert_dir)]
    line = last_error(run(PRE, tmp_path / "b", *common))
    assert "training[2]" in line and entries[2]["image"] in line and "report is null" in line and str(datalist) in line
    debug = run(PRE, tmp_path / "b", *common, "--debug", "true")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.slow
def test_unwritable_output_folder_stops_at_start(tmp_path: Path, entries: list[dict], tiny_bert_dir: Path) -> None:
    datalist = tmp_path / "dl.json"
    datalist.write_text(json.dumps({"training": [{"image": e["image"], "report": "ok"} for e in entries[:4]]}))
    root = tmp_path / "b"
    root.mkdir()
    (root / "models").write_text("a file where the output folder should be")
    line = last_error(
        run(PRE, root, "--dataset_dir", str(datalist), "--image_depth", "18", "--text_model", str(tiny_bert_dir))
    )
    assert "cannot write to the output folder" in line and str(root / "models") in line


@pytest.mark.parametrize(
    ("label", "words"),
    [([0.0, 1.0, 0.0], "label has 3 values; the task has 5 labels"), ([float("inf"), 0, 0, 0, 0], "inf is infinite")],
    ids=["length", "inf"],
)
@pytest.mark.slow
def test_classification_label_that_does_not_fit_the_task(label: list, words: str, tmp_path: Path, entries) -> None:
    rows = [{"image": e["image"], "label": e["label"]} for e in entries[:6]]
    rows[1]["label"] = label
    datalist = tmp_path / "dl.json"
    datalist.write_text(json.dumps({"training": rows[:4], "validation": rows[4:]}))
    line = last_error(run(CLS, tmp_path / "b", "--dataset_dir", str(datalist), *TINY_CLS))
    assert "training[1]" in line and words in line and rows[1]["image"] in line


@pytest.mark.slow
def test_skip_bad_images_covers_the_validation_split(tmp_path: Path, entries: list[dict]) -> None:
    broken = tmp_path / "broken.jpg"
    data = Path(entries[0]["image"]).read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the header reads fine; the pixels are cut short
    rows = [{"image": e["image"], "label": e["label"]} for e in entries[:7]]
    validation = [*rows[4:], {"image": str(broken), "label": rows[0]["label"]}]
    datalist = tmp_path / "dl.json"
    datalist.write_text(json.dumps({"training": rows[:4], "validation": validation}))
    stopped = run(CLS, tmp_path / "a", "--dataset_dir", str(datalist), *TINY_CLS)
    assert "broken.jpg" in last_error(stopped)
    result = run(CLS, tmp_path / "b", "--dataset_dir", str(datalist), *TINY_CLS, "--skip_bad_images", "true")
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Skipping 1 of {len(validation)} validation images" in result.stdout + result.stderr
    assert (tmp_path / "b" / "models" / "model.pt").is_file()
