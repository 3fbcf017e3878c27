"""scripts/benchmark_pretrain.py runs end to end with tiny settings and reports all three variants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_pretrain.py"
TINY = [
    "--depth",
    "18",
    "--image-size",
    "64",
    "--batch-size",
    "4",
    "--warmup",
    "1",
    "--steps",
    "1",
    "--text-layers",
    "2",
    "--large-batch",
    "8",
    "--micro-batch-sizes",
    "2",
    "4",
]


@pytest.mark.slow
def test_benchmark_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--device", "cpu", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr

    for name in ("mflag-cached", "mflag-uncached", "supervised", "mflag-micro2", "mflag-micro4"):
        assert any(line.startswith(name) for line in res.stdout.splitlines()), res.stdout
    assert "img/s" in res.stdout and "vs supervised" in res.stdout
    assert "(a)/(c)" in res.stdout and "(a)/(b)" in res.stdout
    assert "PASS" in res.stdout or "FAIL" in res.stdout

    data = json.loads(out.read_text())
    assert set(data["results"]) == {"mflag-cached", "mflag-uncached", "supervised", "mflag-micro2", "mflag-micro4"}
    for r in data["results"].values():
        assert r["img_per_s"] > 0 and r["ms_per_step"] > 0 and r["peak_mb"] >= 0
    assert data["results"]["mflag-micro2"]["batch"] == 8 and data["results"]["mflag-micro2"]["micro_batch"] == 2
    assert data["results"]["mflag-cached"]["batch"] == 4
    assert set(data["ratios"]) == {
        "(a)/(c) cached/supervised",
        "(a)/(b) cached/uncached",
        "mflag-micro2/cached",
        "mflag-micro4/cached",
    }
    assert all(r["value"] > 0 for r in data["ratios"].values())
    assert data["args"]["depth"] == 18 and data["args"]["text_layers"] == 2
    assert data["machine"]["torch"] == __import__("torch").__version__
