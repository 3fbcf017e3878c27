"""Training throughput and peak memory of M-FLAG pre-training: cached text features, micro-batched large batches.

The variants run one after the other in this process over synthetic batches. Every M-FLAG variant is one call of
the real ``MFLAGTrainer`` iteration (the same code a bundle run executes: zero_grad, autocast, forward, loss,
backward, optimizer step):

* ``mflag-cached``    ResNet + both projectors + ``MFLAGLoss`` + AdamW at ``--batch-size``, text features
  read from a text-feature cache of the reports (random ``[H]`` features standing in for the language model's);
* ``mflag-uncached``  the authors' way: every step tokenises the reports (padded to 512 tokens) and runs a
  BERT-base-sized language model (random weights, eval mode, no_grad) before the same step;
* ``supervised``      the same ResNet with ``Linear(feature_dim, 14)`` and ``BCEWithLogitsLoss``, AdamW;
* ``mflag-microM``    the cached step at ``--large-batch`` (512, the paper's) with ``micro_batch_size`` M, one row per
  ``--micro-batch-sizes`` value: the loss of the large batch through gradient caching (exact given the features;
  in train mode the encoder's BatchNorm normalises per micro-batch).

Targets: ``cached / supervised >= 0.9`` and ``cached / uncached >= 5`` (img/s); ``microM / cached >= 0.7`` (the
gradient cache costs one extra encoder forward). Peak memory should follow the micro-batch size, not the batch.

Usage::

    python scripts/benchmark_pretrain.py                        # ResNet-50, batch 16, 224 px, auto device
    python scripts/benchmark_pretrain.py --device cuda --amp --channels-last --batch-size 64 --json bench.json
    python scripts/benchmark_pretrain.py --large-batch 128 --micro-batch-sizes 16 32   # a shorter CPU run
    python scripts/benchmark_pretrain.py --check                # exit 1 if a target is missed

Throughput is ``batch / median step time`` over ``--steps`` timed steps after ``--warmup`` steps. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA; on CPU it is the peak resident set size sampled in a background thread
minus the resident set size just before the variant is built (the variant's input batches are made before that).
The exit code is 0 unless ``--check`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from torch import nn

from mflag_monai.data.text_features import TextFeatureCache, text_key
from mflag_monai.engines import MFLAGTrainer
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import MFLAG, FrozenTextEncoder, build_image_encoder
from mflag_monai.networks.text_encoder import load_text_model

VARIANTS = ("mflag-cached", "mflag-uncached", "supervised")
# ratio name -> (numerator, denominator, minimum img/s ratio)
TARGETS = {
    "(a)/(c) cached/supervised": ("mflag-cached", "supervised", 0.9),
    "(a)/(b) cached/uncached": ("mflag-cached", "mflag-uncached", 5.0),
}
MICRO_TARGET = 0.7  # micro-batched large batch / plain cached step, img/s
NUM_CLASSES = 14
NUM_BATCHES = 4  # distinct synthetic batches, cycled
OTHER_CPU_WARN_PCT = 5.0  # warn when other processes took more than this share of all CPUs while timing

REPORTS = (
    (
        "IMPRESSION: No acute cardiopulmonary process. FINDINGS: PA and lateral views of the chest were obtained. "
        "The lungs are well expanded and clear without focal consolidation, pleural effusion or pneumothorax. "
        "The cardiomediastinal silhouette is within normal limits. Mild degenerative changes are seen in the thoracic "
        "spine. No acute osseous abnormality is identified. There is no free air under the diaphragm."
    ),
    (
        "IMPRESSION: Moderate cardiomegaly with mild pulmonary vascular congestion and small bilateral pleural "
        "effusions, left greater than right, likely reflecting fluid overload. FINDINGS: Portable AP upright view of "
        "the chest. A right internal jugular central venous catheter terminates in the mid superior vena cava. The "
        "heart is enlarged. There is cephalization of the pulmonary vessels with mild interstitial edema. Blunting of "
        "both costophrenic angles is compatible with small effusions. Patchy retrocardiac opacity may reflect "
        "atelectasis, although pneumonia cannot be excluded. No pneumothorax is seen."
    ),
    (
        "IMPRESSION: Right lower lobe consolidation concerning for pneumonia in the appropriate clinical setting. "
        "Follow-up radiographs after treatment are recommended to document resolution. FINDINGS: There is a new "
        "focal airspace opacity in the right lower lobe with air bronchograms. The left lung is clear. There is no "
        "pleural effusion or pneumothorax. Heart size is normal. The hila are unremarkable. Surgical clips project "
        "over the right upper quadrant."
    ),
    (
        "IMPRESSION: Interval placement of an endotracheal tube, which terminates approximately 4 cm above the carina. "
        "Stable small left apical pneumothorax. FINDINGS: Compared with the prior radiograph from the previous day, "
        "the left chest tube is unchanged in position. The tiny left apical pneumothorax is not significantly changed. "
        "Left basilar atelectasis has slightly improved. The right lung remains clear. The cardiac and mediastinal "
        "contours are stable. A nasogastric tube courses below the diaphragm with its tip in the stomach."
    ),
)


@dataclass
class Batch:
    """One synthetic training batch, already on the device."""

    images: torch.Tensor  # [B, 3, S, S]
    texts: list[str]  # B report strings
    targets: torch.Tensor  # [B, 14] in {0, 1}

    def as_dict(self) -> dict[str, object]:
        """The batch as the pre-training data loader gives it: images and report texts (the cached variants find
        the reports' features in a text-feature cache, as a bundle run does)."""
        return {"image": self.images, "report": self.texts}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--depth", type=int, default=50, choices=(18, 34, 50), help="ResNet depth")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    p.add_argument("--amp", action="store_true", help="CUDA mixed precision: bf16 if supported, else fp16 + GradScaler")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format for the ResNet")
    p.add_argument("--text-layers", type=int, default=12, help="layers of the BERT in mflag-uncached")
    p.add_argument("--text-hidden", type=int, default=768, help="hidden size of the BERT / of the cached features")
    p.add_argument("--large-batch", type=int, default=512, help="batch of the micro-batched variants (paper: 512)")
    p.add_argument(
        "--micro-batch-sizes",
        type=int,
        nargs="*",
        default=[16, 32],
        help="micro_batch_size of each micro-batched variant; none: skip them",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    p.add_argument("--check", action="store_true", help="exit 1 if an acceptance target is missed")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 2:
        p.error("need --steps >= 1, --warmup >= 0 and --batch-size >= 2 (BatchNorm)")
    if any(m < 1 or m >= args.large_batch for m in args.micro_batch_sizes):
        p.error("every --micro-batch-sizes value must be >= 1 and below --large-batch")
    return args


def machine_info(device: torch.device) -> dict[str, object]:
    """CPU model, physical cores and logical CPUs, torch threads, GPU name and library versions."""
    cpu_model, cores = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if key == "model name":
                cpu_model = value
            elif key == "physical id":
                phys = value
            elif key == "core id":
                core = value
                cores.add((phys, core))
    return {
        "cpu": cpu_model,
        "cpu_cores": len(cores) or None,
        "cpu_threads": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def cpu_ticks() -> tuple[int, int, int]:
    """Clock ticks since boot: (all CPUs in total, all CPUs busy, this process), from ``/proc``; zeros elsewhere."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[11:13]  # utime, stime
    except OSError:
        return 0, 0, 0
    total = sum(ticks)
    return total, total - ticks[3] - ticks[4], int(own[0]) + int(own[1])  # minus idle and iowait


def rss_bytes() -> int:
    """Resident set size of this process (from ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """Context manager sampling the process RSS in a background thread; ``peak - start`` is the variant's memory."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> RssPeak:  # noqa: PYI034  (Python 3.10 has no typing.Self)
        self.start = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Yield a dict that holds ``peak_mb`` once the block ends (CUDA: max allocated; CPU: RSS peak - start)."""
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        result["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        with RssPeak() as rss:
            yield result
        result["peak_mb"] = (rss.peak - rss.start) / 2**20


def free_memory(device: torch.device) -> None:
    """Collect garbage and hand freed memory back (CUDA cache, glibc heap) before the next variant."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def make_batches(
    args: argparse.Namespace, device: torch.device, batch_size: int, count: int = NUM_BATCHES
) -> list[Batch]:
    """``count`` synthetic batches of ``batch_size`` (fixed seed): every variant of one batch size sees the same."""
    g = torch.Generator().manual_seed(args.seed)
    b, s = batch_size, args.image_size
    batches = []
    for i in range(count):
        images = torch.randn(b, 3, s, s, generator=g)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        batches.append(
            Batch(
                images=images.to(device),
                texts=[REPORTS[(i * b + j) % len(REPORTS)] for j in range(b)],
                targets=torch.randint(0, 2, (b, NUM_CLASSES), generator=g).float().to(device),
            )
        )
    return batches


class MaxLengthTextEncoder(FrozenTextEncoder):
    """The frozen language model tokenising as the authors did: every report padded to ``max_length`` tokens."""

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise with truncation and ``padding='max_length'``."""
        return self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )


def micro_size(name: str) -> int | None:
    """The micro-batch size of a ``mflag-microM`` variant, else ``None``."""
    return int(name.removeprefix("mflag-micro")) if name.startswith("mflag-micro") else None


def amp_dtype_of(args: argparse.Namespace, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` (CUDA only): bf16 where supported, else fp16 with a grad scaler."""
    if args.amp and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def build_variant(
    name: str, args: argparse.Namespace, device: torch.device, tokenizer: object
) -> tuple[nn.Module, Callable[[Batch], None]]:
    """Return the trainable model of a variant and its ``batch -> None`` training step (optimizer step included)."""
    encoder = build_image_encoder(args.depth)
    memory_format = torch.channels_last if args.channels_last else torch.preserve_format
    amp_dtype = amp_dtype_of(args, device)
    if name == "supervised":
        model = nn.Sequential(encoder, nn.Linear(encoder.feature_dim, NUM_CLASSES)).to(
            device, memory_format=memory_format
        )
        optimizer = adamw(model)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        bce = nn.BCEWithLogitsLoss()

        def supervised_step(batch: Batch) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = bce(model(batch.images), batch.targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        return model.train(), supervised_step
    if name == "mflag-uncached":
        config = transformers.BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=args.text_hidden,
            num_hidden_layers=args.text_layers,
            num_attention_heads=max(1, args.text_hidden // 64),
            intermediate_size=4 * args.text_hidden,
        )
        bert = transformers.BertModel(config, add_pooling_layer=False)  # random weights: only the cost matters
        model = MFLAG(encoder, MaxLengthTextEncoder(model=bert, tokenizer=tokenizer, pooling="cls", max_length=512))
    else:
        model = MFLAG(encoder, text_hidden_size=args.text_hidden)
    model.to(device)
    trainer = MFLAGTrainer(  # the bundle's engine: its iteration is what is timed
        device=device,
        max_epochs=1,
        train_data_loader=[],
        network=model,
        optimizer=adamw(model),
        loss_function=MFLAGLoss(),
        amp=amp_dtype is not None,
        amp_dtype=amp_dtype or "auto",
        channels_last=args.channels_last,
        micro_batch_size=micro_size(name),
        text_cache=None if name == "mflag-uncached" else stand_in_text_cache(args),
    )
    return model, lambda batch: trainer._iteration(trainer, batch.as_dict())


def stand_in_text_cache(args: argparse.Namespace) -> TextFeatureCache:
    """A text-feature cache of the benchmark's reports with random features: the stand-in for the language model's."""
    g = torch.Generator().manual_seed(args.seed)
    features = torch.randn(len(REPORTS), args.text_hidden, generator=g)
    return TextFeatureCache(features, [text_key(t) for t in REPORTS], {"stand_in": True})


def adamw(model: nn.Module) -> torch.optim.Optimizer:
    """The paper's optimizer over the trainable parameters."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=2e-5, weight_decay=0.05, betas=(0.9, 0.999)
    )


def run_variant(
    name: str, args: argparse.Namespace, device: torch.device, batches: list[Batch], tokenizer: object
) -> dict[str, object]:
    """Build, warm up and time one variant; return img/s, ms/step, peak memory, other processes' CPU share and the
    duration of every step (warm-up included)."""
    torch.manual_seed(args.seed)
    with peak_memory(device) as mem:
        model, step = build_variant(name, args, device, tokenizer)
        times = []
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                ticks0 = cpu_ticks()
            start = time.perf_counter()
            step(batches[i % len(batches)])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        ticks1 = cpu_ticks()
        del model, step
    free_memory(device)
    batch = len(batches[0].images)
    step_s = statistics.median(times[args.warmup :])
    total, busy, own = (b - a for a, b in zip(ticks0, ticks1))
    other = 100 * max(busy - own, 0) / total if total else float("nan")
    return {
        "batch": batch,
        "micro_batch": micro_size(name) or batch,
        "img_per_s": batch / step_s,
        "ms_per_step": 1000 * step_s,
        "peak_mb": mem["peak_mb"],
        "other_cpu_pct": other,
        "step_ms": [round(1000 * t, 1) for t in times],
    }


def print_report(
    results: dict[str, dict[str, float]],
    ratios: dict[str, dict[str, object]],
    machine: dict[str, object],
    args: argparse.Namespace,
    device: torch.device,
    amp: str,
) -> None:
    """Print the machine, the per-variant table and the acceptance ratios."""
    print(
        f"\nmachine: {machine['cpu']} ({machine['cpu_cores']} cores / {machine['cpu_threads']} threads, "
        f"torch threads {machine['torch_threads']}); GPU: {machine['gpu'] or 'none'}; torch {machine['torch']}"
    )
    print(
        f"device {device}, ResNet-{args.depth}, {args.image_size} px, precision {amp}, "
        f"channels_last {args.channels_last}, BERT {args.text_layers} layers x {args.text_hidden}, "
        f"{args.warmup} warm-up + {args.steps} timed steps (median)"
    )
    cuda = device.type == "cuda"
    mem_label = "peak alloc MB (cuda max_memory_allocated)" if cuda else "peak MB (RSS peak - RSS before)"
    w = len(mem_label)
    header = (
        f"{'variant':<16}{'batch':>6}{'micro':>6}{'img/s':>9}{'ms/step':>11}  {mem_label}"
        f"{'vs supervised':>15}{'vs cached':>11}{'other procs CPU %':>19}"
    )
    print(header + "\n" + "-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<16}{r['batch']:>6}{r['micro_batch']:>6}{r['img_per_s']:>9.2f}{r['ms_per_step']:>11.1f}  "
            f"{r['peak_mb']:>{w}.0f}{r['vs_supervised']:>15.3f}{r['vs_cached']:>11.3f}{r['other_cpu_pct']:>19.1f}"
        )
    busiest = max(r["other_cpu_pct"] for r in results.values())
    if busiest > OTHER_CPU_WARN_PCT:
        print(
            f"WARNING: other processes used up to {busiest:.0f}% of the machine's CPU time during the timed steps; "
            "the timings and ratios are unreliable, rerun on an idle machine."
        )
    print()
    for key, r in ratios.items():
        print(f"{key:<27} = {r['value']:7.3f}   target >= {r['target']:<4} {'PASS' if r['passed'] else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    args = parse_args(argv)
    torch.set_flush_denormal(True)  # denormals slow CPU training several-fold
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    amp = "fp32"
    if args.amp and device.type == "cuda":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16 + GradScaler"
    elif args.amp:
        print("--amp is ignored on CPU: running fp32")
    machine = machine_info(device)

    transformers.utils.logging.disable_progress_bar()
    text_model, tokenizer = load_text_model("minilm-demo")  # only its (BERT uncased) tokenizer is used
    del text_model

    results = {}
    batches = make_batches(args, device, args.batch_size)
    free_memory(device)
    for name in VARIANTS:
        print(f"running {name} ...", flush=True)
        results[name] = run_variant(name, args, device, batches, tokenizer)
    del batches
    targets = dict(TARGETS)
    if args.micro_batch_sizes:
        large = make_batches(args, device, args.large_batch, count=2)  # two large batches: memory, not variety
        free_memory(device)
        for micro in args.micro_batch_sizes:
            name = f"mflag-micro{micro}"
            print(f"running {name} (batch {args.large_batch}) ...", flush=True)
            results[name] = run_variant(name, args, device, large, tokenizer)
            targets[f"{name}/cached"] = (name, "mflag-cached", MICRO_TARGET)
        del large

    for r in results.values():
        r["vs_supervised"] = r["img_per_s"] / results["supervised"]["img_per_s"]
        r["vs_cached"] = r["img_per_s"] / results["mflag-cached"]["img_per_s"]
        r["peak_vs_cached"] = (
            r["peak_mb"] / results["mflag-cached"]["peak_mb"] if results["mflag-cached"]["peak_mb"] else None
        )
    ratios = {}
    for key, (num, den, target) in targets.items():
        value = results[num]["img_per_s"] / results[den]["img_per_s"]
        ratios[key] = {"value": value, "target": target, "passed": value >= target}
    print_report(results, ratios, machine, args, device, amp)

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "device": str(device),
            "precision": amp,
            "machine": machine,
            "memory_measure": "cuda_max_memory_allocated" if device.type == "cuda" else "rss_peak_minus_start",
            "results": results,
            "ratios": ratios,
            "passed": all(r["passed"] for r in ratios.values()),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if args.check and not all(r["passed"] for r in ratios.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
