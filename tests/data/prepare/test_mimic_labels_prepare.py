"""MIMIC-CXR 14-label preparation: a hand-made fixture in the official layout, and the demo data through the CLI."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.dicom import write_dicom
from mflag_monai.data.prepare.labels import CHEXPERT_14
from mflag_monai.data.prepare.mimic_labels import prepare_mimic_cxr_labels

ALPHABETICAL = sorted(CHEXPERT_14)  # the column order of mimic-cxr-2.0.0-chexpert.csv
SPLITS = ("training", "validation", "test")


def write_mimic(
    root: Path,
    images: list[tuple[str, str, str, str, str]],
    labels: dict[tuple[str, str], dict[str, str]],
    dicom: tuple[str, ...] = (),
) -> Path:
    """``images``: ``(dicom_id, subject, study, ViewPosition, split)``; ``labels``: (subject, study) → cells."""
    meta = [["dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns"]]
    split = [["dicom_id", "study_id", "subject_id", "split"]]
    for dicom_id, subject, study, view, sp in images:
        study_dir = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        study_dir.mkdir(parents=True, exist_ok=True)
        if dicom_id in dicom:
            write_dicom(study_dir / f"{dicom_id}.dcm", np.full((6, 6), 500, np.uint16))
        else:
            Image.fromarray(np.full((6, 6), 80, np.uint8)).save(study_dir / f"{dicom_id}.jpg")
        meta.append([dicom_id, subject, study, view, "6", "6"])
        split.append([dicom_id, study, subject, sp])
    rows = [["subject_id", "study_id", *ALPHABETICAL]]
    rows += [[s, t, *(cells.get(k, "") for k in ALPHABETICAL)] for (s, t), cells in labels.items()]
    for name, table in (("metadata", meta), ("split", split), ("chexpert", rows)):
        with open(root / f"mimic-cxr-2.0.0-{name}.csv", "w", newline="") as f:
            csv.writer(f).writerows(table)
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    images = [
        ("d1", "10000032", "50000001", "PA", "train"),
        ("d2", "10000032", "50000001", "LATERAL", "train"),
        ("d3", "11000045", "50000002", "AP", "validate"),
        ("d4", "12000099", "50000003", "PA", "test"),
        ("d5", "12000099", "50000004", "PA", "test"),  # no label row
        ("d6", "12000099", "50000004", "AP", "test"),  # no label row
        ("d7", "13000001", "50000005", "PA", "train"),
    ]
    labels = {
        ("10000032", "50000001"): {k: "-1.0" for k in CHEXPERT_14},
        ("11000045", "50000002"): {"No Finding": "1.0"},
        ("12000099", "50000003"): {"Edema": "1.0", "Cardiomegaly": "0.0", "Support Devices": "-1.0"},
        ("13000001", "50000005"): {},
    }
    return write_mimic(tmp_path / "mimic", images, labels, dicom=("d3",))


def test_policy_views_official_split_and_unlabelled_studies(tiny: Path) -> None:
    prepared = prepare_mimic_cxr_labels(tiny)
    dl, s = prepared.datalist, prepared.summary
    first = dl["training"][0]
    assert set(first) == {"image", "label", "subject_id", "study_id"}
    assert first["image"] == str(tiny.resolve() / "files/p10/p10000032/s50000001/d1.jpg")
    # every label uncertain: → 1 exactly for Atelectasis, Edema, Pleural Effusion, whatever the column order
    assert [n for n, v in zip(CHEXPERT_14, first["label"]) if v] == ["Edema", "Atelectasis", "Pleural Effusion"]
    assert dl["training"][1]["label"] == [0.0] * 14  # blank → 0
    assert [(e["subject_id"], e["study_id"]) for e in dl["validation"]] == [("11000045", "50000002")]
    assert dl["validation"][0]["image"].endswith("d3.dcm")  # DICOM found beside JPGs
    assert dl["validation"][0]["label"][CHEXPERT_14.index("No Finding")] == 1.0
    test = dl["test"]
    assert len(test) == 1 and [n for n, v in zip(CHEXPERT_14, test[0]["label"]) if v] == ["Edema"]
    assert s["dropped: not a frontal view"] == 1
    assert s["dropped: study without a row in mimic-cxr-2.0.0-chexpert.csv (images)"] == 2
    assert s["dropped: study without a row in mimic-cxr-2.0.0-chexpert.csv (studies)"] == 1
    assert s["training positives: Edema"] == 1 and s["training positives: Cardiomegaly"] == 0


def test_gzipped_tables(tiny: Path) -> None:
    plain = prepare_mimic_cxr_labels(tiny).datalist
    for name in ("metadata", "split", "chexpert"):  # PhysioNet ships the CSVs gzipped
        path = tiny / f"mimic-cxr-2.0.0-{name}.csv"
        with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
    assert prepare_mimic_cxr_labels(tiny).datalist == plain


def test_fraction_only_on_training(tmp_path: Path) -> None:
    images, labels = [], {}
    for i in range(60):
        subject, study = f"1{i:07d}", f"5{i:07d}"
        images.append((f"d{i}", subject, study, "PA", "test" if i >= 50 else "validate" if i >= 45 else "train"))
        labels[(subject, study)] = {"Pleural Effusion": "1.0"} if i % 3 == 0 else {}
    root = write_mimic(tmp_path / "m", images, labels)
    full = prepare_mimic_cxr_labels(root, min_stratum=10)
    part = prepare_mimic_cxr_labels(root, fraction=0.2, min_stratum=10)
    assert [len(part.datalist[n]) for n in SPLITS] == [9, 5, 10]  # 15 positives → 3, 30 negatives → 6
    effusion = CHEXPERT_14.index("Pleural Effusion")
    assert Counter(e["label"][effusion] for e in part.datalist["training"]) == {1.0: 3, 0.0: 6}
    assert part.datalist["validation"] == full.datalist["validation"] and part.datalist["test"] == full.datalist["test"]
    assert prepare_mimic_cxr_labels(root, fraction=0.2, min_stratum=10).datalist == part.datalist
    assert prepare_mimic_cxr_labels(root, fraction=0.2, seed=5, min_stratum=10).datalist != part.datalist


@pytest.mark.slow
def test_demo_through_the_cli(demo_data, tmp_path: Path) -> None:
    demo = demo_data(40, 96)
    root, out = demo / "mimic-cxr", tmp_path / "lists" / "mimic_labels.json"
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "mimic-cxr-labels", "--root", str(root),
         "--out", str(out), "--fraction", "0.1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "kept: training" in res.stdout
    content = json.loads(out.read_text())
    with open(root / "mimic-cxr-2.0.0-chexpert.csv", newline="") as f:
        rows = {(r["subject_id"], r["study_id"]): r for r in csv.DictReader(f)}
    with open(root / "mimic-cxr-2.0.0-split.csv", newline="") as f:
        official = {r["dicom_id"]: r["split"] for r in csv.DictReader(f)}
    names = {"training": "train", "validation": "validate", "test": "test"}
    for split in SPLITS:
        for entry in content[split]:
            assert Path(entry["image"]).is_file() and official[Path(entry["image"]).stem] == names[split]
            row = rows[(entry["subject_id"], entry["study_id"])]
            for name, value in zip(CHEXPERT_14, entry["label"]):
                cell = row[name]
                uncertain_one = cell == "-1.0" and name in {"Atelectasis", "Edema", "Pleural Effusion"}
                assert value == (1.0 if cell == "1.0" or uncertain_one else 0.0), (name, cell)
    summary = content["summary"]
    assert summary["dataset"] == "mimic-cxr-labels" and summary["dropped: not a frontal view"] > 0
    assert 1 <= len(content["training"]) < summary["training before fraction"]
    assert content["validation"] and content["test"]
