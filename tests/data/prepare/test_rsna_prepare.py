"""RSNA Pneumonia preparation for the three tasks: hand-made fixtures and the demo data via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from helpers.dicom import write_dicom
from mflag_monai.data.__main__ import main as cli
from mflag_monai.data.prepare.rsna import boxes_to_mask, prepare_rsna, read_rsna_labels

ROWS, COLS = 10, 8
HEADER = "patientId,x,y,width,height,Target\n"
SPLITS = ("training", "validation", "test")


def make_rsna(root: Path, lines: list[str], images: dict[str, tuple[int, int]]) -> Path:
    (root / "stage_2_train_images").mkdir(parents=True, exist_ok=True)
    for pid, shape in images.items():
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", np.full(shape, 50, np.uint16))
    (root / "stage_2_train_labels.csv").write_text(HEADER + "".join(line + "\n" for line in lines))
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """p1: two boxes (floats as in the real file); p2: negative; p3: listed without a DICOM."""
    lines = ["p1,2.0,1.0,3.0,4.0,1", "p1,5,7,2,2,1", "p2,,,,,0", "p3,,,,,0"]
    return make_rsna(tmp_path / "rsna", lines, {"p1": (ROWS, COLS), "p2": (ROWS, COLS)})


def by_id(datalist: dict[str, list[dict]]) -> dict[str, dict]:
    return {e["patient_id"]: e for name in SPLITS for e in datalist[name]}


def test_read_labels(tiny: Path) -> None:
    labels = read_rsna_labels(tiny / "stage_2_train_labels.csv")
    assert labels == {"p1": (1, [(2.0, 1.0, 3.0, 4.0), (5.0, 7.0, 2.0, 2.0)]), "p2": (0, []), "p3": (0, [])}


def test_box_filled_exactly() -> None:
    mask = boxes_to_mask([(2, 1, 3, 4)], ROWS, COLS)
    expected = np.zeros((ROWS, COLS), np.uint8)
    expected[1:5, 2:5] = 1  # rows y..y+h-1 = 1..4, columns x..x+w-1 = 2..4
    np.testing.assert_array_equal(mask, expected)
    clipped = boxes_to_mask([(6, 8, 5, 5)], ROWS, COLS)  # runs past the corner: clipped
    assert clipped.sum() == 2 * 2 and clipped[8:, 6:].all()


def test_segmentation_masks(tiny: Path, tmp_path: Path) -> None:
    prepared = prepare_rsna(tiny, out=tmp_path / "o" / "rsna.json", task="segmentation")
    entries = by_id(prepared.datalist)
    assert sorted(entries) == ["p1", "p2"] and prepared.summary["dropped: no DICOM file"] == 1
    p1 = entries["p1"]
    assert p1["positive"] == 1 and p1["label"] == str(tmp_path / "o" / "rsna_masks" / "p1.png")
    assert p1["image"] == str(tiny / "stage_2_train_images" / "p1.dcm")
    mask = np.asarray(Image.open(p1["label"]))
    expected = np.zeros((ROWS, COLS), np.uint8)
    expected[1:5, 2:5] = 255
    expected[7:9, 5:7] = 255
    np.testing.assert_array_equal(mask, expected)
    assert entries["p2"]["positive"] == 0 and not np.asarray(Image.open(entries["p2"]["label"])).any()
    again = prepare_rsna(tiny, out=tmp_path / "o" / "rsna.json", task="segmentation")
    assert again.run_info["masks reused"] == 2 and again.datalist == prepared.datalist


def test_detection_and_classification_entries(tiny: Path) -> None:
    det = by_id(prepare_rsna(tiny, task="detection").datalist)
    assert det["p1"]["boxes"] == [[2.0, 1.0, 5.0, 5.0], [5.0, 7.0, 7.0, 9.0]]
    assert det["p1"]["labels"] == [0, 0]
    assert det["p2"]["boxes"] == [] and det["p2"]["labels"] == []
    assert set(det["p1"]) == {"image", "boxes", "labels", "patient_id"}
    cls = by_id(prepare_rsna(tiny).datalist)  # classification is the default
    assert cls["p1"]["label"] == [1] and cls["p2"]["label"] == [0]
    assert set(cls["p1"]) == {"image", "label", "patient_id"}


def test_unknown_task_and_missing_masks_dir(tiny: Path) -> None:
    with pytest.raises(ValueError, match="classification, segmentation, detection"):
        prepare_rsna(tiny, task="localisation")
    with pytest.raises(ValueError, match="masks_dir"):
        prepare_rsna(tiny, task="segmentation")


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 patients, 20 positive (one box each), 4x4 images."""
    lines, images = [], {}
    for i in range(60):
        pid = f"pat{i:02d}"
        images[pid] = (4, 4)
        lines.append(f"{pid},0,0,2,2,1" if i % 3 == 0 else f"{pid},,,,,0")
    return make_rsna(tmp_path_factory.mktemp("rsna_big"), lines, images)


def test_split_stratified_reproducible_and_shared_by_tasks(larger: Path) -> None:
    full = prepare_rsna(larger, seed=42)
    counts = {n: Counter(e["label"][0] for e in full.datalist[n]) for n in SPLITS}
    assert counts == {"training": {1: 14, 0: 28}, "validation": {1: 3, 0: 6}, "test": {1: 3, 0: 6}}
    assert prepare_rsna(larger, seed=42).datalist == full.datalist
    det = prepare_rsna(larger, seed=42, task="detection")
    for name in SPLITS:  # the same images whatever the task
        assert [e["image"] for e in det.datalist[name]] == [e["image"] for e in full.datalist[name]]

    part = prepare_rsna(larger, seed=42, fraction=0.25)
    assert Counter(e["label"][0] for e in part.datalist["training"]) == {1: 4, 0: 7}  # round-half-up 3.5, 7
    assert {e["image"] for e in part.datalist["training"]} <= {e["image"] for e in full.datalist["training"]}
    assert part.datalist["test"] == full.datalist["test"]
    assert prepare_rsna(larger, seed=42, fraction=0.25).datalist == part.datalist
    assert prepare_rsna(larger, seed=1, fraction=0.25).datalist["training"] != part.datalist["training"]


@pytest.mark.slow
def test_demo_through_the_cli(demo_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = demo_data(40, 96, seed=3)
    root = demo / "rsna-pneumonia"
    seg = tmp_path / "lists" / "rsna_seg.json"
    # One real interpreter for the command line; the other two tasks through the same main() in-process (fast).
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "rsna-pneumonia", "--root", str(root),
         "--out", str(seg), "--task", "segmentation"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "segmentation" in res.stdout
    det, cls = tmp_path / "lists" / "rsna_det.json", tmp_path / "lists" / "rsna_cls.json"
    assert cli(["prepare", "rsna-pneumonia", "--root", str(root), "--out", str(det), "--task", "detection"]) == 0
    assert cli(["prepare", "rsna-pneumonia", "--root", str(root), "--out", str(cls), "--task", "classification",
                "--fraction", "0.5"]) == 0  # fmt: skip
    assert "kept: training" in capsys.readouterr().out

    seg_dl, det_dl, cls_dl = (json.loads(p.read_text()) for p in (seg, det, cls))
    assert cls_dl["summary"]["task"] == "classification" and len(cls_dl["training"]) < len(seg_dl["training"])
    boxes = {e["patient_id"]: e["boxes"] for name in SPLITS for e in det_dl[name]}
    for name in SPLITS:
        for entry in seg_dl[name]:
            mask = np.asarray(Image.open(entry["label"]))
            assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
            expected = np.zeros((96, 96), np.uint8)
            for x1, y1, x2, y2 in boxes[entry["patient_id"]]:
                expected[int(round(y1)) : int(round(y2)), int(round(x1)) : int(round(x2))] = 255
            np.testing.assert_array_equal(mask, expected)
    size = pydicom.dcmread(seg_dl["test"][0]["image"], stop_before_pixels=True)
    assert (size.Rows, size.Columns) == (96, 96)
