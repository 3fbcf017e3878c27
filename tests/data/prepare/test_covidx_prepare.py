"""COVIDx preparation on hand-made fixtures in the official layout (``train.txt`` / ``test.txt`` + image folders)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import get_preparer
from mflag_monai.data.prepare.covidx import prepare_covidx, read_covidx_list
from mflag_monai.data.prepare.labels import COVIDX_CLASSES

SPLITS = ("training", "validation", "test")


def write_covidx(root: Path, lines: dict[str, list[str]], missing: tuple[str, ...] = ()) -> Path:
    """``root/{train,test}.txt`` from ``lines`` and one tiny PNG per listed file (except those in ``missing``)."""
    for split, split_lines in lines.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}.txt").write_text("".join(line + "\n" for line in split_lines))
        for entry in read_covidx_list(root / f"{split}.txt"):
            if entry["filename"] not in missing:
                Image.fromarray(np.full((6, 6), 40, np.uint8)).save(root / split / entry["filename"], format="PNG")
    return root


def test_read_list_formats(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text(
        "3 a.png COVID-19 cohen\n"
        "4 b c.png pneumonia rsna extra columns\n"  # a file name with a space, extra columns
        "\n"
        "5 d.png positive sirm\n"
        "6 e.png NEGATIVE rsna\n"
        "7 f.png normal\n"  # no source column
    )
    entries = read_covidx_list(path)
    assert [(e["patient_id"], e["filename"], e["class"]) for e in entries] == [
        ("3", "a.png", "COVID-19"), ("4", "b c.png", "pneumonia"), ("5", "d.png", "COVID-19"),
        ("6", "e.png", "normal"), ("7", "f.png", "normal"),
    ]  # fmt: skip
    path.write_text("8 g.png tuberculosis src\n")
    with pytest.raises(ValueError, match=r"train.txt:1: .*'normal'"):
        read_covidx_list(path)


def test_entries_test_split_and_drops(tmp_path: Path) -> None:
    root = write_covidx(
        tmp_path / "covidx",
        {
            "train": [
                "p1 n1.png normal src",
                "p1 n2.png normal src",
                "p2 c1.png COVID-19 src",
                "p3 gone.png pneumonia src",
                "p2 c1.png COVID-19 src",
            ],
            "test": ["t1 x.png pneumonia src", "t2 y.png positive src extra"],
        },
        missing=("gone.png",),
    )
    prepared = get_preparer("covidx")(root, val_fraction=0.0)
    dl, s = prepared.datalist, prepared.summary
    assert [(Path(e["image"]).name, e["label"], e["patient_id"]) for e in dl["training"]] == [
        ("n1.png", 0, "p1"),
        ("n2.png", 0, "p1"),
        ("c1.png", 2, "p2"),
    ]
    assert dl["training"][0]["image"] == str(root.resolve() / "train" / "n1.png")
    assert [(Path(e["image"]).name, e["label"]) for e in dl["test"]] == [("x.png", 1), ("y.png", 2)]
    assert dl["test"][0]["image"] == str(root.resolve() / "test" / "x.png")
    assert all(isinstance(e["label"], int) for n in SPLITS for e in dl[n])
    assert s["dropped: image file missing"] == 1 and s["dropped: file listed twice"] == 1
    assert s["class positive read as COVID-19"] == 1
    assert s["kept: test per class"] == "normal 0/pneumonia 1/COVID-19 1"


def test_other_split_file_names(tmp_path: Path) -> None:
    root = write_covidx(tmp_path / "c", {"train": ["p1 a.png normal s"], "test": ["p2 b.png normal s"]})
    (root / "train.txt").rename(root / "train_COVIDx9A.txt")
    assert prepare_covidx(root).summary["train list"] == "train_COVIDx9A.txt"
    with pytest.raises(FileNotFoundError, match="train.txt, test.txt"):
        prepare_covidx(root, test_file="nope.txt")


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 training patients with 2 images each (50 COVID-19, 30 pneumonia, 20 normal patients); 6 test images."""
    classes = ["COVID-19"] * 50 + ["pneumonia"] * 30 + ["normal"] * 20
    train = [f"pat{p} img{p}_{k}.png {c} src" for p, c in enumerate(classes) for k in range(2)]
    test = [f"t{i} test{i}.png {COVIDX_CLASSES[i % 3]} src" for i in range(6)]
    return write_covidx(tmp_path_factory.mktemp("covidx_big"), {"train": train, "test": test})


def test_validation_grouped_stratified_and_fraction(larger: Path) -> None:
    full = prepare_covidx(larger)
    val_patients = Counter(COVIDX_CLASSES[e["label"]] for e in full.datalist["validation"])
    assert val_patients == {"COVID-19": 10, "pneumonia": 6, "normal": 4}  # 10% of each class's patients, 2 images each
    patients = {n: {e["patient_id"] for e in full.datalist[n]} for n in SPLITS}
    assert not patients["training"] & patients["validation"] and len(full.datalist["test"]) == 6

    part = prepare_covidx(larger, fraction=0.1)
    assert Counter(e["label"] for e in part.datalist["training"]) == {2: 9, 1: 5, 0: 4}  # 90, 54, 36 images → 10%
    assert {e["image"] for e in part.datalist["training"]} <= {e["image"] for e in full.datalist["training"]}
    assert part.datalist["validation"] == full.datalist["validation"] and part.datalist["test"] == full.datalist["test"]
    assert prepare_covidx(larger, fraction=0.1).datalist == part.datalist
    assert prepare_covidx(larger, fraction=0.1, seed=1).datalist["training"] != part.datalist["training"]
    assert part.summary["kept: training per class"] == "normal 4/pneumonia 5/COVID-19 9"
