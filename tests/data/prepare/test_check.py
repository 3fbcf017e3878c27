"""The datalist check: every problem at once, refusing to start unless told to skip the bad entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.dicom import write_dicom
from mflag_monai.data import DatalistError, check_datalist, resolve_datalist


@pytest.fixture()
def datalist(tmp_path: Path) -> dict[str, list[dict]]:
    good = write_dicom(tmp_path / "good.dcm", np.full((8, 8), 100, np.uint16))
    rgb = write_dicom(tmp_path / "rgb.dcm", np.full((8, 8), 100, np.uint16), "RGB")
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM but not really")
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    return {
        "training": [
            {"image": str(good), "report": "No pneumothorax.", "label": [0.0, 1.0]},
            {"image": str(tmp_path / "missing.dcm"), "report": "ok", "label": [0.0, 0.0]},
            {"image": str(broken), "report": "ok", "label": [1.0, 0.0]},
            {"image": str(rgb), "report": "ok", "label": [1.0, 0.0]},
            {"image": str(png), "report": "  ", "label": [1.0, 0.0]},
            {"image": str(png), "report": "fine", "label": [1.0]},
        ],
        "validation": [{"image": str(good), "report": "dup", "label": [float("nan"), 0.0]}],
    }


def test_reports_every_problem_at_once(datalist) -> None:
    report = check_datalist(datalist, report_key="report")
    text = report.format()
    assert "missing.dcm: file not found" in text
    assert "broken.dcm: not a DICOM file" in text  # the loader's own words
    assert "rgb.dcm: not a grayscale image" in text
    assert "empty report" in text
    assert "label has 1 values, other entries have 2" in text
    assert "duplicate of training[0]" in text and "is not a number" in text
    assert len(report.errors) == 6
    assert [e["report"] for e in report.clean["training"]] == ["No pneumothorax."]
    assert report.clean["validation"] == []


def test_training_refuses_unless_told_to_skip(datalist, tmp_path: Path) -> None:
    path = tmp_path / "dl.json"
    path.write_text(json.dumps(datalist))
    with pytest.raises(DatalistError, match="--skip_bad_entries true"):
        resolve_datalist(str(path), report_key="report")
    clean = resolve_datalist(str(path), report_key="report", skip_bad_entries=True)
    assert len(clean["training"]) == 1


@pytest.mark.slow
def test_cli_exit_code_and_skip_bad(datalist, tmp_path: Path) -> None:
    path = tmp_path / "dl.json"
    path.write_text(json.dumps(datalist))
    cmd = [sys.executable, "-m", "mflag_monai.data", "check", str(path), "--report-key", "report"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1 and "6 errors" in res.stdout
    out = tmp_path / "clean.json"
    res = subprocess.run([*cmd, "--skip-bad", str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and len(json.loads(out.read_text())["training"]) == 1
