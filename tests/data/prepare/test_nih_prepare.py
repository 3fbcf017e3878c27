"""NIH ChestX-ray14 preparation on hand-made fixtures in the official layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import get_preparer
from mflag_monai.data.prepare.labels import NIH_14
from mflag_monai.data.prepare.nih import prepare_nih

# The official header: the bracketed names hold commas, and every line ends with one.
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
)
SPLITS = ("training", "validation", "test")


def write_nih(root: Path, rows: list[tuple[str, str, int]], train_val: list[str], test: list[str],
              missing: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """``Data_Entry_2017.csv`` from ``(image, findings, patient)``, the two lists, PNGs spread over two folders."""
    lines = [HEADER]
    for i, (image, findings, patient) in enumerate(rows):
        lines.append(f"{image},{findings},{i},{patient},58,M,PA,2682,2749,0.143,0.143,\n")
        if image not in missing:
            folder = root / f"images_{1 + i % 2:03d}" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((6, 6), 70, np.uint8)).save(folder / image)
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text("".join(lines))
    (root / "train_val_list.txt").write_text("".join(f"{x}\n" for x in train_val))
    (root / "test_list.txt").write_text("".join(f"{x}\n" for x in test))
    return root


def onehot(*names: str) -> list[float]:
    return [1.0 if n in names else 0.0 for n in NIH_14]


def test_labels_official_split_and_drops(tmp_path: Path) -> None:
    rows = [
        ("00000001_000.png", "Cardiomegaly|Effusion", 1),
        ("00000001_001.png", "No Finding", 1),
        ("00000002_000.png", "Pleural_Thickening|Hernia|Unheard_Of", 2),
        ("00000003_000.png", "Nodule", 3),  # in no list
        ("00000004_000.png", "Mass", 4),  # file missing
        ("00000005_000.png", "Infiltration", 5),
    ]
    root = write_nih(
        tmp_path / "nih", rows,
        train_val=["00000001_000.png", "00000001_001.png", "00000002_000.png", "00000004_000.png"],
        test=["00000005_000.png", "99999999_000.png"],
        missing=("00000004_000.png",),
    )  # fmt: skip
    prepared = get_preparer("nih-cxr14")(root, val_fraction=0.0)
    dl, s = prepared.datalist, prepared.summary
    train = {Path(e["image"]).name: e for e in dl["training"]}
    assert train["00000001_000.png"]["label"] == onehot("Cardiomegaly", "Effusion")
    assert train["00000001_001.png"]["label"] == [0.0] * 14
    assert train["00000002_000.png"]["label"] == onehot("Pleural_Thickening", "Hernia")
    assert train["00000001_000.png"]["patient_id"] == "1"
    assert set(train["00000001_000.png"]) == {"image", "label", "patient_id"}
    assert Path(train["00000001_001.png"]["image"]).parent.parent.name == "images_002"  # found in either folder
    assert [Path(e["image"]).name for e in dl["test"]] == ["00000005_000.png"]  # test_list → test
    assert dl["test"][0]["label"] == onehot("Infiltration")
    assert s["dropped: in no split list"] == 1 and s["dropped: image file missing"] == 1
    assert s["dropped: not in Data_Entry_2017.csv"] == 1 and s["ignored finding name 'Unheard_Of'"] == 1
    assert s["training positives: Cardiomegaly"] == 1 and s["training positives: Effusion"] == 1
    with pytest.raises(FileNotFoundError, match="test_list.txt"):
        (root / "test_list.txt").unlink()
        prepare_nih(root)


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 train_val patients × 3 images (3 frequent label combinations, a rare one); 10 test patients."""
    combos = ["No Finding", "Effusion", "Infiltration|Mass"]
    rows, train_val, test = [], [], []
    for p in range(1, 71):
        for k in range(3):
            image = f"{p:08d}_{k:03d}.png"
            findings = "Hernia" if p % 4 == 0 and k == 0 else combos[(p + k) % 3]  # Hernia: rare, pooled
            rows.append((image, findings, p))
            (test if p > 60 else train_val).append(image)
    return write_nih(tmp_path_factory.mktemp("nih_big"), rows, train_val, test)


def test_patient_grouping_and_fraction(larger: Path) -> None:
    full = prepare_nih(larger, min_stratum=30)
    patients = {n: {e["patient_id"] for e in full.datalist[n]} for n in SPLITS}
    assert len(patients["validation"]) == 6 and len(patients["training"]) == 54 and len(patients["test"]) == 10
    assert not (patients["training"] & patients["validation"]) and not (patients["test"] & patients["training"])
    assert all(len(full.datalist[n]) == 3 * len(patients[n]) for n in SPLITS)  # every image of a patient together

    part = prepare_nih(larger, fraction=0.1, min_stratum=30)
    whole = Counter(tuple(e["label"]) for e in full.datalist["training"])
    kept = Counter(tuple(e["label"]) for e in part.datalist["training"])
    for combo, n in whole.items():
        if n >= 30:  # a frequent combination keeps its own 10%
            assert kept[combo] == int(n * 0.1 + 0.5)
    assert whole[tuple(onehot("Hernia"))] < 30 and kept[tuple(onehot("Hernia"))] <= 2  # pooled, not one per combination
    assert {e["image"] for e in part.datalist["training"]} <= {e["image"] for e in full.datalist["training"]}
    assert part.datalist["validation"] == full.datalist["validation"] and part.datalist["test"] == full.datalist["test"]
    assert prepare_nih(larger, fraction=0.1, min_stratum=30).datalist == part.datalist
    assert prepare_nih(larger, fraction=0.1, seed=3, min_stratum=30).datalist["training"] != part.datalist["training"]
