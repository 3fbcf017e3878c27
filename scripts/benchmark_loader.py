"""Images per second per CPU core of the pre-training input pipeline, with augmentation on the CPU or on the device.

What one data-loader worker (one core) does per image, from the persistent image cache (decoded, resized uint8):

* ``cpu``     read the cached image, random crop, rotation, perspective, autocontrast, normalise, 3 channels
  (``cxr_pretrain_transforms(augment_on="cpu")``), collate float32 batches;
* ``device``  read the cached image, random crop, collate uint8 batches (``augment_on="device"``); the rest runs per
  batch on the training device (``CXRBatchAugmentation``), timed separately: on CPU tensors with one thread (to
  compare with the per-sample chain) and on CUDA where available.

Both modes run in this process with one torch thread and ``num_workers=0``, so the process CPU time is one core's
work; images/s per core = images / process CPU seconds (other processes may slow the wall clock, not that). The
share of CPU taken by other processes while timing is printed; ratios within one run are the reliable numbers.

Targets (issue 19): ``device`` loader >= 1,000 images/s per core; the batched augmentation on CPU tensors no slower
per image than the per-sample chain's random part. The last column is how many cores a GPU training at
``--gpu-images-per-s`` (3,000: ResNet-50 in bf16 on one H100) would need for its loader.

Usage::

    python scripts/benchmark_loader.py                               # 224 px crops from 256 px, batch 64
    python scripts/benchmark_loader.py --device cuda --json loader.json
    python scripts/benchmark_loader.py --check                       # exit 1 if a target is missed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, list_data_collate
from monai.transforms import Compose
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the same CPU accounting as the training benchmark
from benchmark_pretrain import cpu_ticks, machine_info

from mflag_monai.data import build_dataset
from mflag_monai.transforms import AUGMENT_ON, CXRBatchAugmentation, cxr_preprocessing, cxr_pretrain_transforms

LOADER_TARGET = 1000.0  # images/s per core, device mode
OTHER_CPU_WARN_PCT = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--images", type=int, default=128, help="distinct synthetic images in the cache")
    p.add_argument("--source-size", type=int, default=512, help="side of the synthetic PNGs before resizing")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224, help="the random crop side fed to the encoder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5, help="timed passes over the images per mode")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where else to time the batch aug")
    p.add_argument("--gpu-images-per-s", type=float, default=3000.0, help="the GPU's training speed to feed")
    p.add_argument("--cache-dir", type=Path, default=None, help="images and cache here (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    if args.image_size > args.resize or args.batch_size < 1 or args.rounds < 1 or args.images < 1:
        p.error("need --image-size <= --resize and positive --batch-size, --rounds, --images")
    return args


def write_images(folder: Path, count: int, size: int, seed: int) -> list[dict[str, str]]:
    """``count`` grey PNGs: smooth random structure plus noise (cheap to make, not all one value)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    items = []
    for i in range(count):
        path = folder / f"img{i:05d}.png"
        if not path.exists():
            cx, cy, w = rng.random(3)
            img = 40 + 150 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.2 * w)) + rng.normal(0, 8, xx.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        items.append({"image": str(path)})
    return items


@contextlib.contextmanager
def meter() -> Iterator[types.SimpleNamespace]:
    """Process CPU seconds, wall seconds and other processes' share of all CPUs over the block (set when it ends)."""
    m = types.SimpleNamespace()
    ticks, cpu, wall = cpu_ticks(), time.process_time(), time.perf_counter()
    yield m
    m.cpu_s, m.wall_s = time.process_time() - cpu, time.perf_counter() - wall
    total, busy, own = (b - a for a, b in zip(ticks, cpu_ticks()))
    m.other_cpu_pct = 100 * max(busy - own, 0) / total if total else float("nan")


def time_loader(args: argparse.Namespace, data: list[dict], cache_dir: Path, mode: str) -> dict[str, float]:
    """One core's images/s reading the persistent cache through ``mode``'s loader chain, collated in batches."""
    transform = cxr_pretrain_transforms(resize=args.resize, image_size=args.image_size, augment_on=mode)
    transform.set_random_state(seed=args.seed)
    # one cache for both modes: its part of the chain (load, resize, uint8) is the same
    signature = f"benchmark-loader,resize={args.resize},uint8"
    dataset = build_dataset(data, transform, cache="persistent", cache_dir=cache_dir, signature=signature)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0, collate_fn=list_data_collate)
    for _ in loader:  # fills the cache (decode and resize), untimed
        pass
    images = 0
    with meter() as m:
        for _ in range(args.rounds):
            for batch in loader:
                images += len(batch["image"])
    out = batch["image"]
    return {
        "images": images,
        "cpu_s": m.cpu_s,
        "wall_s": m.wall_s,
        "per_core_images_per_s": images / m.cpu_s,
        "wall_images_per_s": images / m.wall_s,
        "ms_per_image_core": 1000 * m.cpu_s / images,
        "batch_dtype": str(out.dtype).removeprefix("torch."),
        "batch_shape": list(out.shape),
        "other_cpu_pct": m.other_cpu_pct,
    }


def cropped_batch(args: argparse.Namespace, data: list[dict]) -> torch.Tensor:
    """A ``[B, 1, image_size, image_size]`` uint8 batch as the ``device`` loader gives it."""
    chain = cxr_pretrain_transforms(resize=args.resize, image_size=args.image_size, augment_on="device")
    chain.set_random_state(seed=args.seed)
    return torch.stack([chain(dict(data[i % len(data)]))["image"] for i in range(args.batch_size)])


def time_per_sample_augmentation(args: argparse.Namespace, batch: torch.Tensor) -> dict[str, float]:
    """One core's images/s of the CPU chain's random part after the crop (what the batched augmentation replaces)."""
    cpu_chain = cxr_pretrain_transforms(resize=args.resize, image_size=args.image_size, augment_on="cpu")
    skip = len(cxr_preprocessing(resize=args.resize).transforms) + 1  # the cached part and the crop
    random_part = Compose(cpu_chain.transforms[skip:])
    random_part.set_random_state(seed=args.seed)
    random_part({"image": batch[0]})  # warm-up
    with meter() as m:
        for _ in range(args.rounds):
            for img in batch:
                random_part({"image": img})
    n = args.rounds * len(batch)
    return {
        "per_core_images_per_s": n / m.cpu_s,
        "ms_per_image_core": 1000 * m.cpu_s / n,
        "other_cpu_pct": m.other_cpu_pct,
    }


def time_batched_augmentation(args: argparse.Namespace, batch: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Milliseconds per batch of :class:`CXRBatchAugmentation` on ``device`` (CPU: one thread, process CPU time)."""
    augment = CXRBatchAugmentation(seed=args.seed)
    batch = batch.to(device)
    reps = max(args.rounds, 3)
    with torch.no_grad():
        augment(batch)  # warm-up (kernels, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            times = []
            for _ in range(reps * 5):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                augment(batch)
                end.record()
                torch.cuda.synchronize(device)
                times.append(start.elapsed_time(end))
            ms, other = float(np.median(times)), float("nan")
        else:
            with meter() as m:
                for _ in range(reps):
                    augment(batch)
            ms, other = 1000 * m.cpu_s / reps, m.other_cpu_pct
    per_image = ms / len(batch)
    return {"ms_per_batch": ms, "ms_per_image": per_image, "images_per_s": 1000 / per_image, "other_cpu_pct": other}


def print_report(result: dict, args: argparse.Namespace) -> None:
    """The table and the targets."""
    m = result["machine"]
    print(
        f"\nmachine: {m['cpu']} ({m['cpu_cores']} cores / {m['cpu_threads']} threads); GPU: {m['gpu'] or 'none'}; "
        f"torch {m['torch']}; one torch thread, num_workers 0"
    )
    print(
        f"{args.images} cached images, resize {args.resize}, image_size {args.image_size}, batch {args.batch_size}, "
        f"{args.rounds} timed passes per mode"
    )
    target = args.gpu_images_per_s
    header = (
        f"{'mode':<8}{'loader img/s/core':>19}{'ms/img/core':>13}{'wall img/s':>12}{'batch':>22}"
        f"{f'cores for {target:,.0f} img/s':>24}{'other procs CPU %':>19}"
    )
    print(header + "\n" + "-" * len(header))
    for mode, r in result["modes"].items():
        shape = f"{r['batch_dtype']} {tuple(r['batch_shape'][1:])}"
        print(
            f"{mode:<8}{r['per_core_images_per_s']:>19.0f}{r['ms_per_image_core']:>13.2f}{r['wall_images_per_s']:>12.0f}"
            f"{shape:>22}{r['cores_for_target']:>24.1f}{r['other_cpu_pct']:>19.1f}"
        )
    print("\nrandom part (rotation, perspective, autocontrast, normalise, 3 channels), per image:")
    ps = result["per_sample_augmentation"]
    print(
        f"  per-sample CPU chain          {ps['ms_per_image_core']:8.3f} ms/img/core  ({ps['per_core_images_per_s']:.0f} img/s)"
    )
    for dev, r in result["batched_augmentation"].items():
        label = "batched, CPU tensors, 1 thread" if dev == "cpu" else f"batched, {dev}"
        print(
            f"  {label:<30}{r['ms_per_image']:8.3f} ms/img       ({r['images_per_s']:.0f} img/s, "
            f"{r['ms_per_batch']:.2f} ms per batch of {args.batch_size})"
        )
    busiest = max([r["other_cpu_pct"] for r in result["modes"].values()] + [ps["other_cpu_pct"]])
    if busiest > OTHER_CPU_WARN_PCT:
        print(
            f"NOTE: other processes took up to {busiest:.0f}% of the machine's CPU while timing: per-core numbers "
            "use this process's CPU time, but shared caches and cores still slow it; compare ratios within a run."
        )
    print()
    for name, c in result["checks"].items():
        print(f"{name:<52} = {c['value']:9.2f}   target >= {c['target']:<6} {'PASS' if c['passed'] else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    args = parse_args(argv)
    torch.set_num_threads(1)  # one core's work: what one data-loader worker does
    torch.set_flush_denormal(True)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        root = args.cache_dir or Path(tmp)
        data = write_images(root / "images", args.images, args.source_size, args.seed)
        modes = {}
        for mode in AUGMENT_ON:
            print(f"timing the {mode} loader ...", flush=True)
            modes[mode] = time_loader(args, data, root / "cache", mode)
            modes[mode]["cores_for_target"] = args.gpu_images_per_s / modes[mode]["per_core_images_per_s"]
        batch = cropped_batch(args, data)
    print("timing the augmentation ...", flush=True)
    per_sample = time_per_sample_augmentation(args, batch)
    batched = {"cpu": time_batched_augmentation(args, batch, torch.device("cpu"))}
    if device.type == "cuda":
        batched["cuda"] = time_batched_augmentation(args, batch, device)

    checks = {
        "device loader img/s per core": (modes["device"]["per_core_images_per_s"], LOADER_TARGET),
        "batched (CPU) / per-sample augmentation, img/s": (
            batched["cpu"]["images_per_s"] / per_sample["per_core_images_per_s"],
            1.0,
        ),
        "cpu loader / device loader, cores needed": (
            modes["cpu"]["cores_for_target"] / modes["device"]["cores_for_target"],
            1.0,
        ),
    }
    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(device),
        "modes": modes,
        "per_core_images_per_s": {mode: r["per_core_images_per_s"] for mode, r in modes.items()},
        "cores_for_target": {mode: r["cores_for_target"] for mode, r in modes.items()},
        "per_sample_augmentation": per_sample,
        "batched_augmentation": batched,
        "checks": {
            k: {"value": v, "target": t, "passed": bool(v >= t) and math.isfinite(v)} for k, (v, t) in checks.items()
        },
    }
    result["passed"] = all(c["passed"] for c in result["checks"].values())
    print_report(result, args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if args.check and not result["passed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
