"""scripts/benchmark_loader.py runs end to end with tiny settings: table, JSON, per-core rates of both modes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_loader.py"
TINY = [
    "--images",
    "6",
    "--source-size",
    "80",
    "--resize",
    "48",
    "--image-size",
    "40",
    "--batch-size",
    "4",
    "--rounds",
    "1",
]


@pytest.mark.slow
def test_benchmark_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "loader.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [
        sys.executable,
        str(SCRIPT),
        *TINY,
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "c"),
        "--json",
        str(out),
    ]
    res = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr

    lines = res.stdout.splitlines()
    assert any(line.startswith("cpu ") for line in lines) and any(line.startswith("device ") for line in lines)
    assert "loader img/s/core" in res.stdout and "cores for 3,000 img/s" in res.stdout
    assert "per-sample CPU chain" in res.stdout and "batched, CPU tensors" in res.stdout
    assert "PASS" in res.stdout or "FAIL" in res.stdout

    data = json.loads(out.read_text())
    assert set(data["per_core_images_per_s"]) == {"cpu", "device"}
    for mode, rate in data["per_core_images_per_s"].items():
        r = data["modes"][mode]
        assert rate > 0 and r["images"] == 6 and data["cores_for_target"][mode] == 3000.0 / rate
        # NaN: the timed window was shorter than one clock tick (10 ms), so no share could be measured
        assert math.isnan(r["other_cpu_pct"]) or 0 <= r["other_cpu_pct"] <= 100
    assert data["modes"]["cpu"]["batch_dtype"] == "float32" and data["modes"]["cpu"]["batch_shape"][1:] == [3, 40, 40]
    assert data["modes"]["device"]["batch_dtype"] == "uint8" and data["modes"]["device"]["batch_shape"][1:] == [
        1,
        40,
        40,
    ]
    assert set(data["batched_augmentation"]) == {"cpu"}
    assert (
        data["batched_augmentation"]["cpu"]["ms_per_batch"] > 0
        and data["per_sample_augmentation"]["ms_per_image_core"] > 0
    )
    assert len(data["checks"]) == 3 and all(c["value"] > 0 for c in data["checks"].values())
    assert data["machine"]["torch"] == __import__("torch").__version__
    assert (tmp_path / "c" / "images").is_dir()  # --cache-dir keeps the images and the cache there
