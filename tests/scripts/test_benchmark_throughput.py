"""scripts/benchmark_throughput.py trains the pre-training bundle with tiny overrides and reports its throughput."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_throughput.py"


@pytest.mark.slow
def test_benchmark_trains_and_reports(tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "throughput.json"
    tiny = [
        "--text_model",
        str(tiny_bert_dir),
        "--image_depth",
        "18",
        "--image_size",
        "48",
        "--resize",
        "56",
        "--batch_size",
        "4",
        "--demo_studies",
        "24",
        "--epochs",
        "2",
        "--num_workers",
        "0",
        "--amp",
        "false",
        "--channels_last",
        "false",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MFLAG_MONAI_DEMO_DIR": str(tmp_path / "demo")}
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--warmup",
        "2",
        "--bundle-root",
        str(tmp_path / "b"),
        "--json",
        str(out),
        "--",
        *tiny,
    ]
    res = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert "steady state:" in res.stdout and "waiting for data:" in res.stdout

    data = json.loads(out.read_text())
    history = json.loads((tmp_path / "b" / "eval" / "history.json").read_text())
    iterations = history[-1]["iteration"]
    assert data["warmup_iterations"] == 2 and data["iterations"] == iterations - 2 > 0
    assert data["images"] == 4 * data["iterations"]
    assert data["images_per_s"] > 0 and 0 <= data["data_wait_fraction"] < 1
    assert data["settings"]["augment_on"] == "device" and data["settings"]["batch_size"] == 4  # default, override
    assert data["settings"]["amp"] is False and data["settings"]["geometry_interval"] == 0
