"""SIIM-ACR Pneumothorax preparation: hand-made fixtures in the official layout, and the demo data via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.dicom import write_dicom
from mflag_monai.data import get_preparer
from mflag_monai.data.prepare.rle import rle_decode_union
from mflag_monai.data.prepare.siim import prepare_siim, read_siim_rle

ROWS, COLS = 6, 5  # not square, so that a transposed mask would have the wrong shape


def dcm(root: Path, image_id: str, rows: int = ROWS, cols: int = COLS) -> Path:
    # nested like the challenge's study/series folders
    path = root / "dicom-images-train" / f"study-{image_id}" / f"series-{image_id}" / f"{image_id}.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dicom(path, np.full((rows, cols), 100, np.uint16))


def png(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A: two regions (two rows); B: negative; C: in the CSV without a DICOM; D: a DICOM without a CSV row."""
    root = tmp_path / "siim"
    for image_id in ("A", "B", "D"):
        dcm(root, image_id)
    # Header with the space after the comma, values with stray spaces, as in the real file.
    (root / "train-rle.csv").write_text(
        "ImageId, EncodedPixels\n"
        "A, 0 2\n"  # column-major flat 0..1 → rows 0-1 of column 0
        "A,  14 2 \n"  # flat 14..15 → column 2 (14 = 2*6 + 2), rows 2-3
        "B, -1\n"
        "C, -1\n"
    )
    return root


def test_read_rle_strips_and_groups(tiny: Path) -> None:
    assert read_siim_rle(tiny / "train-rle.csv") == {"A": ["0 2", "14 2"], "B": [], "C": []}


def test_union_of_two_rows_pixel_by_pixel(tiny: Path, tmp_path: Path) -> None:
    prepared = prepare_siim(tiny, out=tmp_path / "out" / "siim.json")
    entries = {e["image_id"]: e for name in ("training", "validation", "test") for e in prepared.datalist[name]}
    assert sorted(entries) == ["A", "B"]  # C has no DICOM, D no CSV row
    a = entries["A"]
    assert a["positive"] == 1 and a["image"] == str(tiny / "dicom-images-train" / "study-A" / "series-A" / "A.dcm")
    assert a["label"] == str(tmp_path / "out" / "siim_masks" / "A.png")
    mask = png(a["label"])
    expected = np.zeros((ROWS, COLS), np.uint8)
    expected[0:2, 0] = 255
    expected[2:4, 2] = 255
    assert mask.dtype == np.uint8 and mask.shape == (ROWS, COLS)
    np.testing.assert_array_equal(mask, expected)
    assert entries["B"]["positive"] == 0 and not png(entries["B"]["label"]).any()
    s = prepared.summary
    assert (
        s["dropped: no DICOM file"] == 1
        and s["dicom files without a csv row"] == 1
        and prepared.run_info["masks written"] == 2
    )


def test_rle_run_in_first_column_lands_in_first_column(tmp_path: Path) -> None:
    root = tmp_path / "siim"
    dcm(root, "X", rows=8, cols=3)
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\nX, 0 8\n")  # the whole first column
    prepared = prepare_siim(root, masks_dir=tmp_path / "masks")
    mask = png(prepared.datalist["training"][0]["label"])
    assert mask.shape == (8, 3)
    assert (mask[:, 0] == 255).all() and not mask[:, 1:].any()


def test_masks_written_once_and_reused(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "dl.json"
    first = prepare_siim(tiny, out=out)
    mask_file = Path(first.datalist["training"][0]["label"])
    stamp = mask_file.stat().st_mtime_ns
    second = prepare_siim(tiny, out=out)
    assert second.datalist == first.datalist
    assert second.run_info["masks reused"] == 2 and "masks written" not in second.run_info
    assert mask_file.stat().st_mtime_ns == stamp


def test_needs_somewhere_for_the_masks(tiny: Path) -> None:
    with pytest.raises(ValueError, match="masks_dir"):
        prepare_siim(tiny)


def test_bad_rle_names_the_image(tmp_path: Path) -> None:
    root = tmp_path / "siim"
    dcm(root, "X")
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\nX, 0 99\n")
    with pytest.raises(ValueError, match="X"):
        prepare_siim(root, masks_dir=tmp_path / "m")


@pytest.fixture(scope="module")
def balanced_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 positives and 60 negatives, 4x4 images."""
    root = tmp_path_factory.mktemp("siim_balance")
    lines = ["ImageId, EncodedPixels"]
    for i in range(80):
        image_id = f"img{i:03d}"
        dcm(root, image_id, 4, 4)
        lines.append(f"{image_id}, {'1 3' if i % 4 == 0 else '-1'}")
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return root


def test_training_balanced_then_fraction(balanced_root: Path, tmp_path: Path) -> None:
    full = prepare_siim(balanced_root, masks_dir=tmp_path / "m", seed=42)
    split_pos = {k: Counter(e["positive"] for e in v) for k, v in full.datalist.items()}
    assert split_pos["training"] == {1: 14, 0: 14}  # 14 of 20 positives; negatives cut from 42 to 14
    assert split_pos["validation"] == {1: 3, 0: 9} and split_pos["test"] == {1: 3, 0: 9}  # untouched
    assert full.summary["training negatives dropped to balance 1:1"] == 28

    half = prepare_siim(balanced_root, masks_dir=tmp_path / "m", seed=42, fraction=0.5)
    assert Counter(e["positive"] for e in half.datalist["training"]) == {1: 7, 0: 7}
    assert half.datalist["validation"] == full.datalist["validation"]
    ids = lambda entries: {e["image_id"] for e in entries}  # noqa: E731
    assert ids(half.datalist["training"]) <= ids(full.datalist["training"])
    assert prepare_siim(balanced_root, masks_dir=tmp_path / "m", seed=42, fraction=0.5).datalist == half.datalist
    other = prepare_siim(balanced_root, masks_dir=tmp_path / "m", seed=7, fraction=0.5)
    assert ids(other.datalist["training"]) != ids(half.datalist["training"])

    unbalanced = prepare_siim(balanced_root, masks_dir=tmp_path / "m", seed=42, balance=False)
    assert Counter(e["positive"] for e in unbalanced.datalist["training"]) == {1: 14, 0: 42}


@pytest.mark.slow
def test_demo_through_the_cli(demo_data, tmp_path: Path) -> None:
    demo = demo_data(40, 96, seed=3)
    out = tmp_path / "lists" / "siim.json"
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "siim-pneumothorax",
         "--root", str(demo / "siim-pneumothorax"), "--out", str(out), "--fraction", "0.5"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "kept: training" in res.stdout
    content = json.loads(out.read_text())
    training = content["training"]
    assert sum(e["positive"] for e in training) == len(training) - sum(e["positive"] for e in training)
    rles = read_siim_rle(demo / "siim-pneumothorax" / "train-rle.csv")
    for name in ("training", "validation", "test"):
        for entry in content[name]:
            mask = png(entry["label"])
            assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
            assert bool(mask.any()) == bool(entry["positive"])
            np.testing.assert_array_equal(mask // 255, rle_decode_union(rles[entry["image_id"]], 96, 96))
            assert Path(entry["image"]).is_file() and Path(entry["label"]).parent == tmp_path / "lists" / "siim_masks"
    assert get_preparer("siim-pneumothorax") is prepare_siim
