"""MIMIC-CXR preparation on a hand-made fixture in the official layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import get_preparer, resolve_datalist

REPORT = (
    " FINAL REPORT\n INDICATION: cough\n\n FINDINGS: \n Heart size is normal.\n\n IMPRESSION: \n No acute process.\n"
)


def make_mimic(root: Path, rows: list[tuple] | None = None) -> Path:
    """Three studies: one with a PA and a lateral image, one AP with only findings, one without either section.

    ``rows`` (dicom_id, subject, study, view, split, report text or None) replace them.
    """
    rows = rows or [
        ("d1", "10000032", "50000001", "PA", "train", REPORT),
        ("d2", "10000032", "50000001", "LATERAL", "train", None),
        ("d3", "11000045", "50000002", "AP", "validate", " FINDINGS: Small left effusion.\n"),
        ("d4", "12000099", "50000003", "PA", "test", " INDICATION: pain\n COMPARISON: none\n"),
        ("d5", "12000099", "50000004", "PA", "test", None),  # report file missing
    ]
    meta = ["dicom_id,subject_id,study_id,ViewPosition,Rows,Columns"]
    split = ["dicom_id,study_id,subject_id,split"]
    for dicom_id, subject, study, view, sp, report in rows:
        study_dir = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        study_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(study_dir / f"{dicom_id}.jpg")
        if report is not None:
            study_dir.with_suffix(".txt").write_text(report)
        meta.append(f"{dicom_id},{subject},{study},{view},8,8")
        split.append(f"{dicom_id},{study},{subject},{sp}")
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text("\n".join(meta) + "\n")
    (root / "mimic-cxr-2.0.0-split.csv").write_text("\n".join(split) + "\n")
    return root


def test_prepare_keeps_frontal_with_text(tmp_path: Path) -> None:
    prepared = get_preparer("mimic-cxr")(make_mimic(tmp_path))
    dl = prepared.datalist
    assert [e["dicom_id"] for e in dl["training"]] == ["d1"]
    assert dl["training"][0]["report"] == "No acute process. Heart size is normal."
    assert dl["training"][0]["image"].endswith("p10/p10000032/s50000001/d1.jpg")
    assert [e["report"] for e in dl["validation"]] == ["Small left effusion."]
    assert dl["test"] == []
    s = prepared.summary
    assert s["dropped: not a frontal view"] == 1
    assert s["dropped: no impression and no findings"] == 2
    assert s["studies kept"] == 2


@pytest.mark.slow
def test_cli_writes_datalist(tmp_path: Path) -> None:
    root = make_mimic(tmp_path / "mimic")
    out = tmp_path / "dl.json"
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "mimic-cxr", "--root", str(root), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kept: training" in res.stdout
    content = json.loads(out.read_text())
    assert len(content["training"]) == 1 and content["summary"]["dataset"] == "mimic-cxr"


def test_resolve_reuses_current_datalist(tmp_path: Path) -> None:
    root = make_mimic(tmp_path / "mimic")
    out = tmp_path / "dl.json"
    first = resolve_datalist(root, datalist_file=out)
    stamp = out.stat().st_mtime_ns
    assert resolve_datalist(root, datalist_file=out) == first
    assert out.stat().st_mtime_ns == stamp
    assert resolve_datalist(str(out)) == first


COMBINED = " FINAL REPORT\n INDICATION: fever\n\n FINDINGS AND IMPRESSION:\n Small right effusion.\n No pneumothorax.\n"
TUBES = (
    " FINAL REPORT\n FINDINGS:\n\n NG TUBE: tip in the stomach.\n ET TUBE: 4 cm above the carina.\n"
    " Lungs are clear.\n\n IMPRESSION:\n Tubes in place.\n"
)


def test_sectioned_like_the_official_parser(tmp_path: Path) -> None:
    rows = [
        ("d1", "10000032", "50000001", "PA", "train", COMBINED),
        ("d2", "10000033", "50000002", "AP", "train", TUBES),
        ("d3", "10000034", "50000003", "PA", "train", " Chest radiograph, no headers at all.\n"),
        ("d4", "10000035", "50000004", "PA", "train", " INDICATION: pain\n COMPARISON: none\n"),
        ("d5", "10000036", "50000005", "PA", "train", " FINDINGS:\n\n IMPRESSION:\n"),
        ("d6", "10000037", "50000006", "PA", "train", None),
        ("d7", "10000037", "50000006", "AP", "train", None),  # a second image of the same study: counted once
        ("d8", "10000038", "58235663", "PA", "train", " IMPRESSION: text the official rules leave out.\n"),
    ]
    prepared = get_preparer("mimic-cxr")(make_mimic(tmp_path, rows))
    reports = {e["dicom_id"]: e["report"] for e in prepared.datalist["training"]}
    assert reports == {
        "d1": "Small right effusion. No pneumothorax.",
        "d2": "Tubes in place. NG TUBE: tip in the stomach. ET TUBE: 4 cm above the carina. Lungs are clear.",
    }
    s = prepared.summary
    assert s["studies with empty text: no section header"] == 1
    assert s["studies with empty text: no impression or findings section"] == 1
    assert s["studies with empty text: impression and findings sections empty"] == 1
    assert s["studies with empty text: no report file"] == 1
    assert s["studies with empty text: no findings (per-study rule)"] == 1
    assert s["dropped: no impression and no findings"] == 6
    assert "studies with empty text: no report file" in prepared.format_summary()
