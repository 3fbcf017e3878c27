"""Crash safety: a pre-training run killed with SIGKILL resumes and finishes; unsafe checkpoints are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.bundles import bundle_args, run_bundle_cli
from mflag_monai.networks import load_weights_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "bundles" / "pretrain" / "configs" / "train.yaml"


class Payload:
    """An arbitrary object: unpickling it with weights_only=False would call os.getpid (any callable could run)."""

    def __reduce__(self):
        return (os.getpid, ())


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(ValueError, match="refusing to load") as caught:
        load_weights_file(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and "weights_only" not in message


@pytest.mark.slow
def test_sigkill_mid_training_then_resume(tmp_path: Path, tiny_bert_dir: Path) -> None:
    root = tmp_path / "bundle"
    options = [
        "--dataset_dir",
        "demo",
        "--demo_studies",
        "40",
        "--image_depth",
        "18",
        "--resize",
        "72",
        "--image_size",
        "64",
        "--batch_size",
        "2",
        "--epochs",
        "4",
        "--num_workers",
        "0",
        "--text_model",
        str(tiny_bert_dir),
    ]
    cmd = [sys.executable, *bundle_args("training", [CONFIG], root, *options)]  # killed mid-run, so started by hand
    env = {**os.environ, "MFLAG_MONAI_DEMO_DIR": str(tmp_path / "demo"), "HF_HUB_OFFLINE": "1"}
    ckpts = root / "models" / "checkpoints"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (ckpts / "checkpoint_epoch=1.pt").exists():
            assert proc.poll() is None, "training ended before the first checkpoint"
            assert time.time() < deadline, "no checkpoint within 5 minutes"
            time.sleep(0.05)
        time.sleep(0.5)  # into the second epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    history = json.loads((root / "eval" / "history.json").read_text())
    assert len(history) < 4  # killed before the end
    for ckpt in ckpts.glob("*.pt"):  # whatever was on disk at the kill loads
        torch.load(ckpt, weights_only=True)

    result = run_bundle_cli(
        "training", [CONFIG], root, *options, "--resume", "true", env={"MFLAG_MONAI_DEMO_DIR": str(tmp_path / "demo")}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Resuming from" in result.stdout + result.stderr
    history = json.loads((root / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    final = torch.load(ckpts / "checkpoint_epoch=4.pt", weights_only=True)
    per_epoch = history[1]["iteration"] - history[0]["iteration"]
    assert final["trainer"]["iteration"] == 4 * per_epoch
    for ckpt in ckpts.glob("*.pt"):
        torch.load(ckpt, weights_only=True)
    assert not list(ckpts.glob(".*.tmp"))  # no temporary file left behind
