"""End-to-end pre-training throughput of the bundle: steady-state images/s and the share of time spent waiting for data.

Runs ``bundles/pretrain/configs/train.yaml`` in this process (``ConfigWorkflow``) with a
:class:`~mflag_monai.handlers.throughput.ThroughputMeter` on its trainer. The defaults are the GPU benchmark of
issue 19: the demo data, 224-px crops from 256 px, batch 256, AMP, channels-last, device augmentation, cached text
features; any bundle setting can be overridden after ``--``, as on ``python -m monai.bundle run``::

    python scripts/benchmark_throughput.py --json throughput.json
    python scripts/benchmark_throughput.py -- --augment_on cpu --num_workers 16       # the CPU chain, for comparison

On CUDA each iteration ends with a synchronisation, so "waiting for data" is time the GPU was idle.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from mflag_monai.handlers.throughput import ThroughputMeter

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "bundles" / "pretrain" / "configs" / "train.yaml"
GPU_BENCHMARK = {
    "image_size": 224,
    "resize": 256,
    "batch_size": 256,
    "amp": True,
    "channels_last": True,
    "augment_on": "device",
    "text_cache": True,
    "image_cache": "persistent",
    "epochs": 4,
    "demo_studies": 2400,  # ~1,900 training pairs: 7 iterations of 256 per epoch
    "geometry_interval": 0,  # no diagnostics between epochs: they are not training
    "num_workers": min(8, os.cpu_count() or 1),
}


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The script's options, and the bundle overrides given after them (``--name value`` pairs)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--warmup", type=int, default=5, help="iterations left out at the start")
    p.add_argument("--bundle-root", type=Path, default=None, help="outputs and caches here (default: temporary)")
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--json", type=Path, default=None, help="write the summary and the settings to this file")
    args, rest = p.parse_known_args(argv)
    rest = [r for r in rest if r != "--"]
    if len(rest) % 2 or not all(k.startswith("--") for k in rest[::2]):
        p.error(f"bundle overrides must be '--name value' pairs, got {rest}")
    overrides = {k[2:]: yaml.safe_load(v) for k, v in zip(rest[::2], rest[1::2])}
    return args, {**GPU_BENCHMARK, **overrides}


def run(args: argparse.Namespace, settings: dict[str, Any], bundle_root: Path) -> dict[str, Any]:
    """Train with ``settings`` and return the meter's summary."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        workflow_type="train", config_file=str(args.config), bundle_root=str(bundle_root), **settings
    )
    workflow.initialize()
    meter = ThroughputMeter(warmup_iterations=args.warmup).attach(workflow.parser.get_parsed_content("train#trainer"))
    workflow.run()
    workflow.finalize()
    return meter.summary


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    args, settings = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run(args, settings, args.bundle_root or Path(tmp) / "bundle")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"\nsettings: {settings}\ndevice: {device}, torch {torch.__version__}")
    print(
        f"steady state: {summary['images_per_s']:.1f} images/s over {summary['iterations']} iterations "
        f"({summary['images']} images) after {summary['warmup_iterations']} warm-up\n"
        f"waiting for data: {100 * summary['data_wait_fraction']:.1f}% of the time "
        f"({summary['data_wait_ms_per_iteration']:.1f} ms per iteration; step {summary['step_ms_per_iteration']:.1f} ms, "
        f"after-step handlers {summary['other_ms_per_iteration']:.1f} ms)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": settings, "device": device, "torch": torch.__version__, **summary}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
