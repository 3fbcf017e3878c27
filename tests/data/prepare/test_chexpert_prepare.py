"""CheXpert preparation: hand-made fixtures in the official layout, and the demo data through the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import get_preparer
from mflag_monai.data.prepare.chexpert import chexpert_patient_id, prepare_chexpert
from mflag_monai.data.prepare.labels import CHEXPERT_14, CHEXPERT_COMPETITION

HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_14]
SPLITS = ("training", "validation", "test")


def write_chexpert(root: Path, rows: dict[str, list[tuple[str, str, dict[str, str]]]]) -> Path:
    """The official layout: ``root/CheXpert-v1.0-small/{train,valid}.csv`` with ``Path`` values relative to ``root``.

    ``rows[csv name]`` holds ``(path after the split folder, Frontal|Lateral, {label: cell})``; absent labels are blank.
    """
    data = root / "CheXpert-v1.0-small"
    for split, items in rows.items():
        lines = []
        for rel, view, labels in items:
            path = f"CheXpert-v1.0-small/{split}/{rel}"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 90, np.uint8)).save(root / path)
            cells = [labels.get(k, "") for k in CHEXPERT_14]
            lines.append([path, "Female", "50", view, "AP" if view == "Frontal" else "", *cells])
        data.mkdir(parents=True, exist_ok=True)
        with open(data / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([HEADER, *lines])
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Every competition label uncertain once; a lateral; a blank row; two valid.csv images."""
    unc = {k: "-1.0" for k in CHEXPERT_COMPETITION}
    return write_chexpert(
        tmp_path / "chexpert",
        {
            "train": [
                ("patient00001/study1/view1_frontal.jpg", "Frontal", {**unc, "No Finding": "", "Pneumonia": "-1.0"}),
                ("patient00001/study1/view2_lateral.jpg", "Lateral", {"Edema": "1.0"}),
                ("patient00002/study1/view1_frontal.jpg", "Frontal", {"Cardiomegaly": "1.0", "Edema": "0.0"}),
                ("patient00003/study1/view1_frontal.jpg", "Frontal", {}),
            ],
            "valid": [
                ("patient64541/study1/view1_frontal.jpg", "Frontal", {"Atelectasis": "1.0", "Edema": "0.0"}),
                ("patient64541/study1/view2_lateral.jpg", "Lateral", {"Atelectasis": "1.0"}),
                ("patient64542/study1/view1_frontal.jpg", "Frontal", {"Pleural Effusion": "1.0"}),
            ],
        },
    )


def by_path(prepared) -> dict[str, dict]:
    return {e["image"].split("CheXpert-v1.0-small/")[1]: e for name in SPLITS for e in prepared.datalist[name]}


def test_policy_laterals_and_valid_as_test(tiny: Path) -> None:
    prepared = prepare_chexpert(tiny, val_fraction=0.0)
    entries = by_path(prepared)
    # uncertain → 1 for Atelectasis, Edema, Pleural Effusion; → 0 for Cardiomegaly, Consolidation
    assert entries["train/patient00001/study1/view1_frontal.jpg"]["label"] == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert entries["train/patient00002/study1/view1_frontal.jpg"]["label"] == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert entries["train/patient00003/study1/view1_frontal.jpg"]["label"] == [0.0] * 5  # blank → 0
    assert not any("lateral" in p for p in entries)
    assert prepared.summary["dropped: lateral view"] == 2
    assert prepared.summary["uncertain labels -> 1"] == 3 and prepared.summary["uncertain labels -> 0"] == 2
    test = prepared.datalist["test"]
    assert [e["patient_id"] for e in test] == ["patient64541", "patient64542"]
    assert [e["label"] for e in test] == [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]
    assert set(test[0]) == {"image", "label", "patient_id"}
    assert Path(test[0]["image"]).is_absolute() and Path(test[0]["image"]).is_file()
    assert prepared.summary["kept: training"] == 3 and prepared.summary["training positives: Atelectasis"] == 1


def test_root_may_be_either_folder(tiny: Path) -> None:
    parent = prepare_chexpert(tiny)
    inner = get_preparer("chexpert")(tiny / "CheXpert-v1.0-small")
    assert inner.datalist == parent.datalist
    (tiny.parent / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="CheXpert-v1.0-small"):
        prepare_chexpert(tiny.parent / "empty")


def test_missing_image_dropped(tiny: Path) -> None:
    (tiny / "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg").unlink()
    prepared = prepare_chexpert(tiny)
    assert prepared.summary["dropped: image file missing"] == 1 and "patient00003" not in {
        e["patient_id"] for name in SPLITS for e in prepared.datalist[name]
    }


def test_patient_id() -> None:
    assert chexpert_patient_id("CheXpert-v1.0-small/train/patient00042/study3/view1_frontal.jpg") == "patient00042"


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 training patients with 2 studies each: 3 label combinations; 5 valid.csv patients."""
    combos = [{}, {"Cardiomegaly": "1.0"}, {"Edema": "1.0", "Pleural Effusion": "-1.0"}]
    train = [(f"patient{p:05d}/study{s}/view1_frontal.jpg", "Frontal", combos[(p + s) % 3])
             for p in range(1, 81) for s in (1, 2)]  # fmt: skip
    valid = [(f"patient{p:05d}/study1/view1_frontal.jpg", "Frontal", combos[p % 3]) for p in range(64541, 64546)]
    return write_chexpert(tmp_path_factory.mktemp("chexpert_big"), {"train": train, "valid": valid})


def test_split_grouped_fraction_stratified_and_reproducible(larger: Path) -> None:
    full = prepare_chexpert(larger, min_stratum=20)
    patients = {name: {e["patient_id"] for e in full.datalist[name]} for name in SPLITS}
    assert len(patients["validation"]) == 8 and len(patients["training"]) == 72  # 10% of 80 patients
    assert not (patients["training"] & patients["validation"]) and not (patients["test"] & patients["training"])
    assert len(full.datalist["test"]) == 5

    part = prepare_chexpert(larger, fraction=0.25, min_stratum=20)
    whole = Counter(tuple(e["label"]) for e in full.datalist["training"])
    kept = Counter(tuple(e["label"]) for e in part.datalist["training"])
    assert set(kept) == set(whole) and all(kept[k] == int(whole[k] * 0.25 + 0.5) for k in whole)  # per combination
    assert {e["image"] for e in part.datalist["training"]} <= {e["image"] for e in full.datalist["training"]}
    assert part.datalist["validation"] == full.datalist["validation"] and part.datalist["test"] == full.datalist["test"]
    assert prepare_chexpert(larger, fraction=0.25, min_stratum=20).datalist == part.datalist
    other_seed = prepare_chexpert(larger, fraction=0.25, seed=7, min_stratum=20)
    assert other_seed.datalist["training"] != part.datalist["training"]
    assert part.summary["training before fraction"] == len(full.datalist["training"])


@pytest.mark.slow
def test_demo_through_the_cli(demo_data, tmp_path: Path) -> None:
    demo = demo_data(40, 96)
    out = tmp_path / "lists" / "chexpert.json"
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "chexpert", "--root", str(demo / "chexpert"),
         "--out", str(out), "--fraction", "0.1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "kept: training" in res.stdout
    content = json.loads(out.read_text())
    with open(demo / "chexpert" / "valid.csv", newline="") as f:
        valid = [row for row in csv.DictReader(f) if row["Frontal/Lateral"] == "Frontal"]
    assert len(content["test"]) == len(valid) and content["summary"]["dataset"] == "chexpert"
    for entry, row in zip(content["test"], valid):
        assert entry["image"].endswith(row["Path"]) and Path(entry["image"]).is_file()
        assert entry["label"] == [float(row[k] == "1.0") for k in CHEXPERT_COMPETITION]  # valid.csv holds 0/1 only
    summary = content["summary"]
    assert 1 <= len(content["training"]) < summary["training before fraction"]
    assert all(len(e["label"]) == 5 and set(e["label"]) <= {0.0, 1.0} for n in SPLITS for e in content[n])
    train_patients = {e["patient_id"] for e in content["training"]}
    assert not train_patients & {e["patient_id"] for e in content["validation"]}
