"""MIMIC-CXR preparation on a hand-made fixture in the official layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mflag_monai.data import get_preparer, resolve_datalist

REPORT = " FINAL REPORT\n INDICATION: cough\n\n FINDINGS: \n Heart size is normal.\n\n IMPRESSION: \n No acute process.\n"


def make_mimic(root: Path) -> Path:
    """Three studies: one with a PA and a lateral image, one AP with only findings, one without either section."""
    rows = [
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


def test_cli_writes_datalist(tmp_path: Path) -> None:
    root = make_mimic(tmp_path / "mimic")
    out = tmp_path / "dl.json"
    res = subprocess.run(
        [sys.executable, "-m", "mflag_monai.data", "prepare", "mimic-cxr", "--root", str(root), "--out", str(out)],
        capture_output=True, text=True, check=True,
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
