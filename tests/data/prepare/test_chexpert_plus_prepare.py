"""CheXpert Plus preparation on fixtures in the official CSV format."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import get_preparer
from mflag_monai.data.demo import CHEXPERT_PLUS_CSV, write_chexpert_plus_demo
from mflag_monai.data.prepare.chexpert_plus import prepare_chexpert_plus

SPLITS = ("training", "validation", "test")
HEADER = [
    "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order",
    "report", "section_findings", "section_impression", "split",
]  # fmt: skip


def rows_of(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["path_to_image"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chexpert_plus_demo(tmp_path_factory.mktemp("chexpert_plus"), num_patients=16, image_size=64)


def test_frontal_only_and_the_official_split(demo_root: Path) -> None:
    prepared = prepare_chexpert_plus(demo_root)
    rows = rows_of(demo_root / CHEXPERT_PLUS_CSV)
    official = {"train": "training", "valid": "validation"}
    for name in SPLITS:
        for e in prepared.datalist[name]:
            row = rows[e["image_id"]]
            assert row["frontal_lateral"] == "Frontal" and official[row["split"]] == name
            assert e["patient_id"] == row["deid_patient_id"] and e["view"] == row["ap_pa"]
            assert Path(e["image"]).is_file() and e["image"].endswith(row["path_to_image"][:-4] + ".png")
            if row["section_impression"]:
                assert (
                    e["report"] == f"{row['section_impression']} {row['section_findings']}".strip()
                )  # impression first
    frontal_with_text = [r for r in rows.values() if r["frontal_lateral"] == "Frontal" and r["report"]]
    assert sum(len(prepared.datalist[n]) for n in SPLITS) == len(frontal_with_text)
    assert prepared.datalist["validation"] and prepared.datalist["test"] == []
    s = prepared.summary
    assert s["dropped: lateral view"] == sum(r["frontal_lateral"] == "Lateral" for r in rows.values())
    assert s["dropped: no impression and no findings"] == 1
    assert s["text from the report column (section columns empty)"] >= 1  # the sections only in "report"
    patients = {n: {e["patient_id"] for e in prepared.datalist[n]} for n in SPLITS}
    assert not patients["training"] & patients["validation"]


def test_text_from_the_report_when_the_section_columns_are_empty(demo_root: Path) -> None:
    prepared = prepare_chexpert_plus(demo_root)
    rows = rows_of(demo_root / CHEXPERT_PLUS_CSV)
    fallback = [e for n in SPLITS for e in prepared.datalist[n] if not rows[e["image_id"]]["section_impression"]]
    assert fallback
    for e in fallback:
        report = rows[e["image_id"]]["report"]
        impression = " ".join(report.split("IMPRESSION:")[1].split())
        assert e["report"].startswith(impression) and "NARRATIVE" not in e["report"]


def test_fraction_keeps_whole_patients(demo_root: Path) -> None:
    full = prepare_chexpert_plus(demo_root)
    half = get_preparer("chexpert-plus")(demo_root, fraction=0.5)
    kept = {e["patient_id"] for e in half.datalist["training"]}
    assert len(kept) == round(len({e["patient_id"] for e in full.datalist["training"]}) / 2 + 1e-9)
    assert half.datalist["training"] == [e for e in full.datalist["training"] if e["patient_id"] in kept]
    assert half.datalist["validation"] == full.datalist["validation"]


def write_rows(csv_path: Path, rows: list[list[str]]) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])


def test_nested_folders_and_dicom_only_images(tmp_path: Path) -> None:
    root = tmp_path / "chexpertplus"
    png = root / "PNG" / "PNG" / "train" / "patient00001" / "study1" / "view1_frontal.png"
    png.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    dcm = root / "DICOM" / "valid" / "patient00002" / "study1" / "view1_frontal.dcm"
    dcm.parent.mkdir(parents=True)
    dcm.write_bytes(b"\0" * 132)  # only its existence matters here
    write_rows(root / "meta" / CHEXPERT_PLUS_CSV, [
        ["train/patient00001/study1/view1_frontal.jpg", "train/patient00001/study1/view1_frontal.dcm", "Frontal", "PA",
         "patient00001", "1", "", "Clear lungs.", "Normal.", "train"],
        ["valid/patient00002/study1/view1_frontal.jpg", "valid/patient00002/study1/view1_frontal.dcm", "Frontal", "AP",
         "patient00002", "1", "FINDINGS: Effusion.\nIMPRESSION: Effusion, small.", "", "", "valid"],
        ["train/patient00003/study1/view1_frontal.jpg", "", "Frontal", "PA", "patient00003", "1", "", "x", "y", "train"],
    ])  # fmt: skip
    prepared = prepare_chexpert_plus(root)
    assert [e["report"] for e in prepared.datalist["training"]] == ["Normal. Clear lungs."]
    assert prepared.datalist["training"][0]["image"] == str(png.resolve())
    (entry,) = prepared.datalist["validation"]
    assert entry["image"] == str(dcm.resolve()) and entry["report"] == "Effusion, small. Effusion."
    assert entry["study_id"] == "patient00002/study1"
    assert prepared.summary["dropped: image file missing"] == 1


@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path: Path) -> None:
    write_rows(tmp_path / "bad" / CHEXPERT_PLUS_CSV, [])
    text = (tmp_path / "bad" / CHEXPERT_PLUS_CSV).read_text().replace("section_findings", "findings")
    (tmp_path / "bad" / CHEXPERT_PLUS_CSV).write_text(text)
    with pytest.raises(ValueError, match="missing columns"):
        prepare_chexpert_plus(tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "chexpert-plus", "--root", str(tmp_path / "empty"),
         "--out", str(tmp_path / "dl.json")],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr and "df_chexpert_plus_" in res.stderr
    assert res.stderr.strip().count("\n") == 0
