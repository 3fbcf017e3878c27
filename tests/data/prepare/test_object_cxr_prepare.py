"""Object-CXR preparation on hand-made fixtures in the official layout (``train.csv`` / ``dev.csv`` + JPG folders)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import get_preparer
from mflag_monai.data.__main__ import main as cli
from mflag_monai.data.prepare.object_cxr import parse_object_cxr_annotation, prepare_object_cxr, read_object_cxr_csv
from mflag_monai.utils.errors import InputError

SPLITS = ("training", "validation", "test")
HEADER = "image_name,annotation\n"


def write_object_cxr(root: Path, rows: dict[str, list[str]], missing: tuple[str, ...] = ()) -> Path:
    """``root/{train,dev}.csv`` from raw CSV lines and a tiny JPG per listed image in ``root/{train,dev}/``."""
    for split, lines in rows.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}.csv").write_text(HEADER + "".join(line + "\n" for line in lines))
        for line in lines:
            name = line.split(",", 1)[0]
            if name not in missing:
                Image.fromarray(np.full((12, 10), 90, np.uint8)).save(root / split / name, format="JPEG")
    return root


def test_parse_the_three_object_types() -> None:
    assert parse_object_cxr_annotation("") == []
    objects = parse_object_cxr_annotation("0 10 20 30 40;1 50 60 70 90;2 5 9 15 2 12 30 1 20")
    assert objects == [
        ("rectangle", [10.0, 20.0, 30.0, 40.0]),
        ("ellipse", [50.0, 60.0, 70.0, 90.0]),
        ("polygon", [1.0, 2.0, 15.0, 30.0]),  # the polygon's enclosing box
    ]
    assert parse_object_cxr_annotation("0 30 40 10 20;") == [("rectangle", [10.0, 20.0, 30.0, 40.0])]  # corner order
    for bad, why in [("3 1 2 3 4", "unknown type 3"), ("0 1 2 3", "x1 y1 x2 y2"), ("2 1 2 3", "even number"),
                     ("2 1 2", "at least two points"), ("0 1 2 a 4", "not a type followed by numbers")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_object_cxr_annotation(bad)


def test_read_csv_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(HEADER + "a.jpg,0 1 2 3 4\nb.jpg,\nc.jpg,9 1 1 1 1\n")
    with pytest.raises(ValueError, match=r"train.csv:4: c.jpg: .*unknown type 9"):
        read_object_cxr_csv(path)
    path.write_text("name,boxes\na.jpg,\n")
    with pytest.raises(InputError, match=r"missing columns \['image_name', 'annotation'\] \(its header: name, boxes\)"):
        read_object_cxr_csv(path)
    with pytest.raises(InputError, match="table not found: --root must be the Object-CXR folder"):
        read_object_cxr_csv(tmp_path / "dev.csv")


def test_entries_official_split_and_drops(tmp_path: Path) -> None:
    root = write_object_cxr(
        tmp_path / "object-cxr",
        {
            "train": ["00001.jpg,0 10 20 30 40;2 1 2 5 2 3 9", "00002.jpg,", "00003.jpg,1 4 4 8 8", "00004.jpg,"],
            "dev": ['08001.jpg,"0 1 1 3 3"', "08002.jpg,"],
        },
        missing=("00004.jpg",),
    )
    prepared = get_preparer("object-cxr")(root, val_fraction=0.0)
    dl, summary = prepared.datalist, prepared.summary
    train = {e["image_id"]: e for e in dl["training"]}
    assert sorted(train) == ["00001.jpg", "00002.jpg", "00003.jpg"] and dl["validation"] == []
    assert train["00001.jpg"] == {
        "image": str(root.resolve() / "train" / "00001.jpg"),
        "boxes": [[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 5.0, 9.0]],  # several objects of one image, polygon enclosed
        "labels": [0, 0],
        "image_id": "00001.jpg",
    }
    assert train["00002.jpg"]["boxes"] == [] and train["00002.jpg"]["labels"] == []  # negative image
    assert [(Path(e["image"]).parent.name, e["boxes"]) for e in dl["test"]] == [
        ("dev", [[1.0, 1.0, 3.0, 3.0]]),
        ("dev", []),
    ]
    assert summary["dropped: image file missing or ambiguous"] == 1
    assert summary["objects: rectangle"] == 2 and summary["objects: polygon"] == 1 and summary["objects: ellipse"] == 1
    assert summary["kept: test with/without objects"] == "1/1" and summary["kept: training boxes"] == 3
    with pytest.raises(ValueError, match="detection task only"):
        prepare_object_cxr(root, task="segmentation")


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 training images (one in four with a box), 10 dev images, images flat in the root folder."""
    root = tmp_path_factory.mktemp("ocxr")
    train = [f"{i:05d}.jpg," + ("0 1 1 5 5" if i % 4 == 0 else "") for i in range(100)]
    dev = [f"{9000 + i:05d}.jpg," for i in range(10)]
    (root / "train.csv").write_text(HEADER + "\n".join(train) + "\n")
    (root / "dev.csv").write_text(HEADER + "\n".join(dev) + "\n")
    for line in train + dev:
        Image.fromarray(np.zeros((6, 6), np.uint8)).save(root / line.split(",")[0], format="JPEG")
    return root


def test_validation_and_fractions_are_seeded_stratified_and_nested(larger: Path) -> None:
    full = prepare_object_cxr(larger, seed=42)
    positives = {n: Counter(bool(e["boxes"]) for e in full.datalist[n]) for n in SPLITS}
    assert positives["training"] == {False: 68, True: 23} and positives["validation"] == {
        False: 7,
        True: 2,
    }  # 22.5 rounds up
    assert len(full.datalist["test"]) == 10
    assert prepare_object_cxr(larger, seed=42).datalist == full.datalist
    assert prepare_object_cxr(larger, seed=1).datalist["validation"] != full.datalist["validation"]
    part = prepare_object_cxr(larger, seed=42, fraction=0.1)
    assert Counter(bool(e["boxes"]) for e in part.datalist["training"]) == {False: 7, True: 2}
    assert {e["image"] for e in part.datalist["training"]} <= {e["image"] for e in full.datalist["training"]}
    assert part.datalist["validation"] == full.datalist["validation"] and part.datalist["test"] == full.datalist["test"]


def test_through_the_cli(larger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ocxr.json"
    assert cli(["prepare", "object-cxr", "--root", str(larger), "--out", str(out), "--fraction", "0.1"]) == 0
    assert "kept: training" in capsys.readouterr().out
    content = json.loads(out.read_text())
    assert content["summary"]["dataset"] == "object-cxr" and len(content["training"]) == 9
