"""multi_gpu_train.yaml under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.bundles import bundle_args
from mflag_monai.networks import build_image_encoder

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "pretrain" / "configs"


@pytest.mark.slow
def test_torchrun_two_processes(demo_data, tmp_path: Path, tiny_bert_dir: Path) -> None:
    demo = demo_data(24, 96)
    record = tmp_path / "record.yaml"
    record.write_text(
        "sample_recorder:\n"
        "  _target_: helpers.sample_recorder.SampleRecorder\n"
        f"  out_dir: {tmp_path}\n"
        'train#trainer#train_handlers: "$(@train#handlers[:1] if dist.get_rank() > 0 else @train#handlers) + [@sample_recorder]"\n'
    )
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml"), str(record)]
    with socket.socket() as free:  # a free port: another test process may run a rendezvous at the same time
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    cmd = [
        sys.executable,
        *launcher,
        *bundle_args(
            "training",
            configs,
            tmp_path / "bundle",
            "--dataset_dir",
            str(demo / "mimic-cxr"),
            "--image_depth",
            "18",
            "--resize",
            "40",
            "--image_size",
            "32",
            "--batch_size",
            "4",
            "--epochs",
            "2",
            "--num_workers",
            "0",
            "--text_model",
            str(tiny_bert_dir),
            "--orth_gather",
            "true",
        ),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),  # helpers
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    ranks = [json.loads((tmp_path / f"samples_rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("1", "2"):
        a, b = set(ranks[0][epoch]), set(ranks[1][epoch])
        assert a and b and not (a & b), f"ranks overlap in epoch {epoch}"
    assert ranks[0]["1"] != ranks[0]["2"]  # the sampler's epoch is set: a new order every epoch

    models = tmp_path / "bundle" / "models"
    build_image_encoder(18, pretrained_weights=models / "encoder.pt")  # loads strictly: no DDP prefix
    checkpoints = list((models / "checkpoints").glob("*.pt"))
    assert len(checkpoints) == 2
    state = torch.load(checkpoints[0], weights_only=True)
    assert not any(k.startswith("module.") for k in state["network"])
    history = json.loads((tmp_path / "bundle" / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
