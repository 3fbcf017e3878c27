"""Does M-FLAG pre-training produce a better encoder? A transfer experiment sized so that its design does not decide
the answer, with a positive control that must show learning first, runnable on 2 CPU cores in parts.

Design (defaults; ``docs/results/README.md`` explains each choice):

* Data: the built-in demo generator, sized up: 3,000 MIMIC-CXR studies (the pre-training corpus: ~2,300 training
  image-report pairs), and labelled sets whose test splits hold >= 200 images per task. The phantom's findings are
  local and of varied size and contrast, so that no global intensity statistic gives them away.
* Pre-training: the pre-training bundle, as a user runs it, ResNet-18 at 64 px, batch 64 for 12 epochs (432 steps)
  in one cosine cycle, rotations up to 10°, once per seed and encoder row (``VARIANTS``): ``infonce`` (the positive
  control: CLIP/ConVIRT's contrastive loss), ``mflag`` (the paper's losses), ``mflag-no-orth`` (``--orth_weight 0``),
  ``mflag-orth-proj`` (``--orth_feature image_proj``), ``mflag-frozen-text`` (``--freeze_text_projector true``).
* Label fractions 1% and 10% of each task's training split; the pre-training corpus is >= 10x the largest labelled
  set used (100% is available with ``--fractions``, where that no longer holds).
* References: ``random`` (a frozen randomly initialised ResNet, seeded) and, for classification, ``text-ceiling``;
  three seeds per cell (the seed drives pre-training, the label draw and the head's initialisation), reported as
  mean +- standard deviation.
* Classification: a linear probe (L2-regularised logistic regression, penalty chosen on the validation split) on the
  frozen encoder's pooled feature, MIMIC-CXR CheXpert labels, mean AUROC on the official test split. Its ceiling:
  the same probe on the frozen language model's features of the same studies' reports (``text-ceiling``).
* Segmentation (SIIM pneumothorax, Dice) and detection (RSNA pneumonia, mAP@[.40:.75]): the downstream bundles'
  ``training`` then ``evaluating`` workflows, run in this process (``monai.bundle.run``, the function behind the
  command line), frozen encoder, model selection on the validation split. Detection only with ``--tasks``: at the
  CPU design's 64 px it is at its floor for every encoder.
* What pre-training itself learnt, on the held-out MIMIC-CXR test pairs: image->report retrieval R@1/5/10 (chance
  stated), zero-shot mean AUROC from text prompts, the effective ranks of the encoder feature and both projections
  (collapse), and the pre-training curves (every ``train_*`` term of each run's ``eval/history.json``).
* The budget sweep (``--sweep-epochs``): probe AUROC at 10% of labels and R@5 against pre-training steps for
  ``--objectives``, next to the random encoder, in ``curves.png``: the check that the design lets the positive
  control learn before any M-FLAG number is read.

Usage::

    python scripts/benchmark_transfer.py --sweep-epochs 4 8 --objectives infonce mflag   # validate the design first
    python scripts/benchmark_transfer.py                 # the benchmark (on 2 CPU cores; resumable)
    python scripts/benchmark_transfer.py --encoders random infonce --tasks classification   # a part of it
    python scripts/benchmark_transfer.py --quick         # minutes: a smoke test of every step (its numbers mean nothing)
    python scripts/benchmark_transfer.py --device cuda   # one GPU: 224 px, 24 epochs (cuda_design; not yet measured)
    python scripts/benchmark_transfer.py --protocol --pretrained-image-weights resnet50-imagenet.pth \\
        --text-model /models/BiomedVLP-CXR-BERT-general --dataset pretrain=/data/mimic-cxr-jpg \\
        --dataset classification=/data/mimic-cxr-jpg --dataset segmentation=/data/siim \\
        --dataset detection=/data/rsna --out results_protocol          # the paper's settings (GPUs, days)

Outputs (``--out``, default ``docs/results``): ``results.json`` (the source of truth: ``scores[task][encoder]
[fraction]`` as ``{"mean", "std", "values"}``), ``results.md`` (tables), ``transfer.png`` (metric vs label fraction,
error bars), ``spectra.png`` (encoder-feature spectra), and for the sweep ``sweep.json`` and ``curves.png``. Every run
keeps its bundle folder and log under ``--work``; finished runs are reused (``--fresh`` redoes them), so an
interrupted benchmark continues where it stopped, and parts run on different days add up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
# What each pre-trained encoder row changes in the pre-training bundle (its objective picks the learning rate).
VARIANTS: dict[str, dict[str, object]] = {
    "infonce": {"objective": "infonce"},  # the positive control: CLIP/ConVIRT's contrastive loss
    "mflag": {"objective": "mflag"},  # the paper
    "mflag-no-orth": {"objective": "mflag", "orth_weight": 0.0},  # ablation: alignment only
    "mflag-orth-proj": {"objective": "mflag", "orth_feature": "image_proj"},  # orthogonality on the projection
    "mflag-frozen-text": {"objective": "mflag", "freeze_text_projector": True},  # text projector kept at init
}
ENCODERS = ("random", *VARIANTS)
DEFAULT_EPOCHS = 12  # the smallest budget swept where the positive control passes (docs/results/README.md)
TASKS = ("classification", "segmentation", "detection")
# Detection is left out by default: at 64 px the demo's opacities are a few pixels across and every encoder scored
# mAP <= 0.01 in 12 epochs (docs/results/README.md), a task at its floor that cannot rank encoders. --tasks adds it.
DEFAULT_TASKS = ("classification", "segmentation")
DONE = "benchmark_done.json"  # written into a run folder once the run finished

# bundle dataset name, demo folder and headline metric of each task (metric read from eval/metrics.json)
TASK_DATA = {
    "pretrain": ("mimic-cxr", "mimic-cxr"),
    "classification": ("mimic-cxr-labels", "mimic-cxr"),
    "segmentation": ("siim-pneumothorax", "siim-pneumothorax"),
    "detection": ("rsna-pneumonia", "rsna-pneumonia"),
}
METRIC_NAMES = {"classification": "mean AUROC", "segmentation": "Dice", "detection": "mAP@[.40:.75]"}


@dataclass
class Design:
    """Every size of one experiment; :func:`cpu_design` is the default, :func:`protocol_design` the paper's.

    Bundle settings are kept as ``{name: value}`` (the bundle's own names) and turned into command-line options
    only when a run starts, so nothing reads them back out of an argument list."""

    depth: int = 18
    image_size: int = 64
    resize: int = 72
    demo_studies: int = 3000
    demo_image_size: int = 80
    demo_counts: dict[str, int] = field(
        default_factory=lambda: {
            "chexpert-train": 40,
            "chexpert-valid": 8,
            "rsna-pneumonia": 1400,
            "siim-pneumothorax": 1400,
        }
    )
    pretrain_epochs: int = 12
    learning_rates: dict[str, float] = field(default_factory=dict)  # per objective
    pretrain: dict[str, object] = field(default_factory=dict)  # bundle settings besides data, seed, depth, sizes
    downstream: dict[str, dict[str, object]] = field(default_factory=dict)  # per task
    downstream_at_1pct: dict[str, dict[str, object]] = field(default_factory=dict)  # extra settings at 1% of labels
    text_model: str = "minilm-demo"
    device: str = "cpu"  # where the benchmark's own feature extraction runs (the bundles pick a GPU themselves)

    def pretrain_settings(self, variant: str, epochs: int | None = None) -> dict[str, object]:
        """The pre-training bundle's settings of one encoder row (``VARIANTS``) at ``epochs`` (default: the design's)."""
        settings = {"objective": "mflag", **VARIANTS[variant]}
        return {
            "image_depth": self.depth, "resize": self.resize, "image_size": self.image_size,
            "epochs": epochs or self.pretrain_epochs, "learning_rate": self.learning_rates[settings["objective"]],
            **self.pretrain, **settings,
        }  # fmt: skip

    def downstream_settings(self, task: str, fraction: float) -> dict[str, object]:
        """The downstream bundle's settings of ``task`` at ``fraction`` of the labels."""
        extra = self.downstream_at_1pct.get(task, {}) if fraction <= 0.01 else {}
        return {"image_depth": self.depth, **self.downstream.get(task, {}), **extra}


def cli_options(settings: dict[str, object]) -> list[str]:
    """``{"epochs": 12, "amp": True}`` as bundle command-line options ``["--epochs", "12", "--amp", "true"]``."""
    out = []
    for key, value in settings.items():
        out += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def cpu_design(pretrain_epochs: int = DEFAULT_EPOCHS, learning_rates: dict[str, float] | None = None) -> Design:
    """The default: ResNet-18 at 64 px, batch 64 for 12 epochs (432 steps) in one cosine cycle, rotations up to 10°.

    Chosen with the positive control (docs/results/README.md, "Design"): InfoNCE from random weights stays at chance
    (ln 64) for 150 steps under the paper's 0-90° rotations with its restarts every ~40 steps, and learns with milder
    rotations and one cycle; a batch of 64 buys 4x the steps of a batch of 256 for the same compute.
    """
    return Design(
        pretrain_epochs=pretrain_epochs,
        learning_rates={"mflag": 1e-3, "infonce": 1e-3, **(learning_rates or {})},
        pretrain={"batch_size": 64, "max_rotation_deg": 10, "restart_fraction": 4.0, "augment_on": "device",
                  "num_workers": 0, "geometry_interval": 1000, "bn_recalibration_samples": 512},
        downstream={
            "segmentation": {"image_size": 64, "batch_size": 8, "epochs": 20, "val_interval": 4, "patience": 3,
                             "num_workers": 0},
            "detection": {"image_size": 64, "batch_size": 8, "epochs": 12, "val_interval": 4, "patience": 3,
                          "num_workers": 0},
        },
    )  # fmt: skip


def cuda_design() -> Design:
    """``--device cuda``: the CPU design's encoder rows and seeds at 224 px (256 resized, demo images generated at 256)
    with twice the pre-training steps (24 epochs, 864 steps) and mixed precision, for one GPU with a 16-core host.

    Sized by estimate, not yet measured: ResNet-18 at 224 px trains at several thousand images per second on an H100,
    so a pre-training run (2,300 pairs x 24 epochs) is about a minute with data loading, 15 runs about 15 minutes, and
    the downstream cells a few more; trim with ``--encoders`` / ``--tasks`` if the first run says otherwise.
    """
    design = cpu_design(pretrain_epochs=24)
    design.image_size, design.resize, design.demo_image_size, design.device = 224, 256, 256, "cuda"
    design.pretrain.update(amp=True, num_workers=8)
    for settings in design.downstream.values():
        settings.update(image_size=224, batch_size=32, num_workers=8)
    return design


def quick_design() -> Design:
    """Minutes: a tiny demo and 2 epochs everywhere. Checks that every step runs; its numbers mean nothing."""
    design = cpu_design(pretrain_epochs=2)
    design.demo_studies, design.demo_counts = 120, {"rsna-pneumonia": 120, "siim-pneumothorax": 120}
    design.pretrain.update(batch_size=32)
    for settings in design.downstream.values():
        settings.update(epochs=2, val_interval=1)
    return design


def protocol_design(pretrained_image_weights: str, text_model: str) -> Design:
    """The paper's settings (:mod:`mflag_monai.protocol`, docs/method.md): ResNet-50 from ImageNet weights, CXR-BERT,
    224/256 px, batch 512, AMP, learning rate 2e-5, 50 epochs, the authors' preprocessing and augmentation;
    downstream MGCA's settings (224 px, 50 epochs, patience 10, encoder BatchNorm on batch statistics for segmentation
    and detection), batch 8 (SIIM), RetinaNet with an FPN of 256 channels, learning rate 2e-4 at 1% of RSNA."""
    from mflag_monai.protocol import DOWNSTREAM_PROTOCOL, PRETRAIN_PROTOCOL

    pretrain = {
        k: v
        for k, v in PRETRAIN_PROTOCOL.items()
        if k not in ("image_depth", "image_size", "resize", "epochs", "learning_rate", "objective")
    }
    return Design(
        depth=int(PRETRAIN_PROTOCOL["image_depth"]),
        image_size=int(PRETRAIN_PROTOCOL["image_size"]),
        resize=int(PRETRAIN_PROTOCOL["resize"]),
        demo_studies=0,
        demo_counts={},
        pretrain_epochs=int(PRETRAIN_PROTOCOL["epochs"]),
        learning_rates={"mflag": float(PRETRAIN_PROTOCOL["learning_rate"]), "infonce": 2e-5},
        pretrain={**pretrain, "text_model": text_model, "pretrained_image_weights": pretrained_image_weights},
        downstream={task: {k: v for k, v in DOWNSTREAM_PROTOCOL[task].items() if k != "image_depth"}
                    for task in ("segmentation", "detection")},
        downstream_at_1pct={"detection": {"batch_size": 8, "learning_rate": 2e-4}},
        text_model=text_model,
        device="cuda",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- running bundles


def _pythonpath_env() -> dict[str, str]:
    """The environment of bundle subprocesses: offline, and this checkout importable."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}


def pretrain_root(work: Path, name: str, epochs: int, seed: int) -> Path:
    """The bundle folder of one pre-training run (shared by the benchmark and the budget sweep)."""
    return work / f"pretrain-{name}-e{epochs}-seed{seed}"


def pretrain(
    name: str, seed: int, data: Path, design: Design, work: Path, fresh: bool, epochs: int | None = None
) -> Path:
    """Pre-train one encoder row with the bundle command a user types; returns its bundle folder."""
    epochs = epochs or design.pretrain_epochs
    root = pretrain_root(work, name, epochs, seed)
    if fresh or not (root / DONE).is_file():
        settings = {"dataset_dir": str(data), "seed": seed, "cache_dir": str(work / "cache"),
                    **design.pretrain_settings(name, epochs)}  # fmt: skip
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file",
               str(BUNDLES / "pretrain" / "configs" / "train.yaml"), "--bundle_root", str(root), *cli_options(settings)]  # fmt: skip
        log = work / "logs" / f"{root.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"pre-training {name} for {epochs} epochs (seed {seed}) ...", flush=True)
        start = time.time()
        with log.open("w") as f:
            f.write(" ".join(cmd) + "\n\n")
            f.flush()
            code = subprocess.run(
                cmd, cwd=REPO, env=_pythonpath_env(), stdout=f, stderr=subprocess.STDOUT, check=False
            ).returncode
        if code != 0:
            raise RuntimeError(
                f"pre-training {name} seed {seed} failed (exit {code}); log: {log}\n{log.read_text()[-3000:]}"
            )
        (root / DONE).write_text(json.dumps({"seconds": round(time.time() - start, 1), "command": cmd}, indent=1))
    return root


def run_bundle_here(task: str, run_id: str, configs: list[str], root: Path, overrides: dict, log: Path) -> None:
    """``monai.bundle.run`` in this process (no interpreter start per run); its output goes to ``log``."""
    from monai.bundle import run

    log.parent.mkdir(parents=True, exist_ok=True)
    files = [str(BUNDLES / task / "configs" / c) for c in configs]
    with log.open("a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print(
            f"monai.bundle.run({run_id!r}, config_file={files}, bundle_root={str(root)!r}, **{overrides})", flush=True
        )
        run(run_id, config_file=files, logging_file=str(BUNDLES / task / "configs" / "logging.conf"),
            bundle_root=str(root), **overrides)  # fmt: skip


def downstream_bundle(task: str, encoder: str, fraction: float, seed: int, data: Path, weights: str | None,
                      design: Design, work: Path, fresh: bool) -> float:  # fmt: skip
    """Train and evaluate one (segmentation or detection) cell with its bundle; returns the test metric."""
    root = work / f"{task}-{encoder}-{fraction:g}-seed{seed}"
    report = root / "eval" / "metrics.json"
    if fresh or not (root / DONE).is_file():
        overrides = {
            "dataset": TASK_DATA[task][0], "dataset_dir": str(data), "fraction": fraction, "seed": seed,
            **design.downstream_settings(task, fraction),
        }  # fmt: skip
        log = work / "logs" / f"{root.name}.log"
        log.unlink(missing_ok=True)
        print(f"{task:<15} {encoder:<14} {fraction:>5g} seed {seed} ...", flush=True)
        start = time.time()
        # "null", not None: monai.bundle.run drops None-valued overrides, which would keep the default encoder path
        run_bundle_here(
            task, "training", ["train.yaml"], root, {**overrides, "pretrained_encoder": weights or "null"}, log
        )
        # evaluate reads every weight from the trained models/model.pt
        run_bundle_here(task, "evaluating", ["train.yaml", "evaluate.yaml"], root, overrides, log)
        (root / DONE).write_text(json.dumps({"seconds": round(time.time() - start, 1)}))
    metrics = json.loads(report.read_text())
    return float(metrics["metrics"]["val_dice"] if task == "segmentation" else metrics["mAP"])


# ------------------------------------------------------------------------------------ the linear probe (in process)


def classification_splits(data: Path, fraction: float, seed: int, work: Path) -> dict[str, list[dict]]:
    """The classification bundle's datalist at ``fraction`` / ``seed`` (the same preparer and label draw), restricted
    to the studies that have a report (~97%; the rest have neither findings nor impression), so that the image
    probes, the text ceiling and retrieval all score the same studies."""
    from mflag_monai.data import resolve_datalist

    reports = report_texts(data, work)
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # the preparer's summary, once per call
        splits = resolve_datalist(str(data), datalist_file=work / "datalists" / f"classification_{fraction:g}_seed{seed}.json",
                                  dataset=TASK_DATA["classification"][0], fraction=fraction, seed=seed, schema="classification")  # fmt: skip
    return {k: [e for e in v if e["image"] in reports] for k, v in splits.items() if isinstance(v, list)}


def image_features(encoder, entries: list[dict], image_size: int, batch_size: int = 128, device: str = "cpu"):
    """Pooled features ``[N, F]`` (on the CPU) of the frozen encoder (eval mode) under the classification bundle's
    preprocessing, computed on ``device``."""
    import torch
    from monai.data import DataLoader, Dataset

    from mflag_monai.transforms import cxr_classification_transforms

    loader = DataLoader(
        Dataset(entries, cxr_classification_transforms(image_size, "multi-label")), batch_size=batch_size
    )
    encoder = encoder.to(device).eval()
    with torch.no_grad():
        return torch.cat([encoder(batch["image"].to(device)).cpu() for batch in loader]).double()


def fit_linear_probe(x, y, l2: float):
    """L2-regularised logistic regression, one output per label, solved to convergence (L-BFGS): a convex probe, so
    the score measures the features rather than an optimiser schedule. Returns ``predict(features) -> probabilities``."""
    import torch
    import torch.nn.functional as F

    mean, std = x.mean(0), x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones(x.shape[1], dtype=x.dtype)
    z = (x - mean) / std
    weight = torch.zeros(x.shape[1], y.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(y.shape[1], dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    return lambda features: torch.sigmoid(((features - mean) / std) @ weight + bias)


def probe_score(features: dict[str, object], splits: dict[str, list[dict]], names: list[str]) -> float:
    """Test mean AUROC of the linear probe trained on ``splits["training"]``, its penalty chosen on validation."""
    return float(probe_report(features, splits, names)["mean_auroc"])


def probe_report(features: dict[str, object], splits: dict[str, list[dict]], names: list[str]) -> dict:
    """The test report (``mean_auroc`` and per-label ``auroc``) of the linear probe of :func:`probe_score`."""
    import torch

    from mflag_monai.metrics import classification_report

    def stack(split):
        rows = [features[e["image"]] for e in splits[split]]
        return torch.stack(rows), torch.tensor(
            [[float(v) for v in e["label"]] for e in splits[split]], dtype=torch.float64
        )

    (x, y), (xv, yv), (xt, yt) = stack("training"), stack("validation"), stack("test")
    best = max(
        ((classification_report(fit_linear_probe(x, y, l2)(xv), yv, names)["mean_auroc"], l2) for l2 in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)),
        key=lambda t: (-math.inf if math.isnan(t[0]) else t[0]),
    )  # fmt: skip
    return classification_report(fit_linear_probe(x, y, best[1])(xt), yt, names)


def classification_cells(encoders: dict[str, dict[int, str | None]], data: Path, design: Design, fractions: list[float],
                         seeds: list[int], work: Path, text_ceiling: bool = True,
                         per_label: dict | None = None) -> dict[str, dict[str, list[float]]]:  # fmt: skip
    """``{encoder: {fraction: [score per seed]}}`` for every encoder, plus the ``text-ceiling`` reference; with
    ``per_label``, also fills it with ``{encoder: {fraction: {label: [AUROC per seed]}}}``."""
    import torch

    from mflag_monai.data.prepare.labels import classification_task
    from mflag_monai.networks import build_image_encoder
    from mflag_monai.networks.text_encoder import FrozenTextEncoder

    names = classification_task(TASK_DATA["classification"][0]).names
    full = classification_splits(data, 1.0, 0, work)
    entries = [e for split in ("training", "validation", "test") for e in full[split]]
    scores: dict[str, dict[str, list[float]]] = {}
    for encoder, per_seed in encoders.items():
        for seed in seeds:
            torch.manual_seed(seed)  # the random encoder's initialisation
            model = build_image_encoder(design.depth, pretrained_weights=per_seed[seed])
            feats = dict(
                zip(
                    [e["image"] for e in entries],
                    image_features(model, entries, design.image_size, device=design.device),
                )
            )
            for fraction in fractions:
                report = probe_report(feats, classification_splits(data, fraction, seed, work), names)
                score = float(report["mean_auroc"])
                scores.setdefault(encoder, {}).setdefault(str(fraction), []).append(round(score, 4))
                if per_label is not None:
                    cell = per_label.setdefault(encoder, {}).setdefault(str(fraction), {})
                    for label, value in report["auroc"].items():
                        cell.setdefault(label, []).append(round(float(value), 4))
                print(f"classification  {encoder:<18} {fraction:>5g} seed {seed}: {score:.4f}", flush=True)
    if not text_ceiling:
        return scores
    # The ceiling: the frozen language model's features of each study's report (what pre-training aligns to).
    reports = report_texts(data, work)
    text = FrozenTextEncoder(design.text_model)
    texts = [reports[e["image"]] for e in entries]
    with torch.no_grad():
        tfeats = torch.cat([text(texts[i : i + 64]) for i in range(0, len(texts), 64)]).double()
    tfeats = dict(zip([e["image"] for e in entries], tfeats))
    for seed in seeds:
        for fraction in fractions:
            score = probe_score(tfeats, classification_splits(data, fraction, seed, work), names)
            scores.setdefault("text-ceiling", {}).setdefault(str(fraction), []).append(round(score, 4))
    return scores


_SPLITS: dict[str, dict[str, list[dict]]] = {}


def report_splits(data: Path, work: Path) -> dict[str, list[dict]]:
    """The pre-training datalist's splits (prepared once per data folder)."""
    from mflag_monai.data import resolve_datalist

    if str(data) not in _SPLITS:
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            splits = resolve_datalist(
                str(data), datalist_file=work / "datalists" / "pretrain.json", dataset="mimic-cxr", schema="pretrain"
            )
        _SPLITS[str(data)] = {k: v for k, v in splits.items() if isinstance(v, list)}
    return _SPLITS[str(data)]


def report_texts(data: Path, work: Path) -> dict[str, str]:
    """``{image path: report text}`` of the pre-training datalist (every split): the text each study was paired with."""
    return {e["image"]: e["report"] for v in report_splits(data, work).values() for e in v}


# ---------------------------------------------------------------------- what pre-training learnt (in process)


def pretraining_report(root: Path, data: Path, design: Design, work: Path) -> dict:
    """Retrieval and zero-shot on the held-out MIMIC-CXR test pairs, the loss curves and the final eval-mode geometry."""
    import torch

    from mflag_monai.data.prepare.labels import classification_task
    from mflag_monai.evaluation.zero_shot import default_prompts, embed_images, embed_texts, zero_shot_probabilities
    from mflag_monai.metrics import classification_report
    from mflag_monai.metrics.retrieval import recall_at_k, report_match
    from mflag_monai.networks.pretrained import load_pretrained_mflag

    model, _ = load_pretrained_mflag(root / "models", text_model=design.text_model)
    model = model.to(design.device)
    resize, image_size = design.resize, design.image_size
    reports = report_texts(data, work)
    test = classification_splits(data, 1.0, 0, work)["test"]
    with contextlib.redirect_stderr(open(os.devnull, "w")):  # progress bars
        images = embed_images(model, test, resize, image_size, device=design.device)
        distinct, match = report_match([reports[e["image"]] for e in test])
        text_emb = embed_texts(model, distinct)
    recall = recall_at_k(images @ text_emb.T, match)
    names = classification_task(TASK_DATA["classification"][0]).names
    labels = torch.tensor([[float(v) for v in e["label"]] for e in test])
    zero_shot = classification_report(
        zero_shot_probabilities(images, model, default_prompts(names), "multi-label"), labels, names
    )
    history = json.loads((root / "eval" / "history.json").read_text())
    last = history[-1]
    return {
        "retrieval_image_to_report": recall,
        "retrieval_pairs": len(test),
        "retrieval_distinct_reports": len(distinct),
        "retrieval_chance": {f"R@{k}": min(1.0, k / len(distinct)) for k in (1, 5, 10)},
        "zero_shot_mean_auroc": zero_shot["mean_auroc"],
        # every epoch metric the objective logged (train_*), per epoch: the pre-training curves
        "curves": {k: [round(h.get(k, float("nan")), 4) for h in history] for k in last if k.startswith("train_")},
        "final": {k: round(v, 4) for k, v in last.items() if isinstance(v, float)},
        "geometry": final_geometry(model, data, design, work),
        "seconds": json.loads((root / DONE).read_text())["seconds"],
    }


def final_geometry(model, data: Path, design: Design, work: Path) -> dict[str, float]:
    """Eval-mode effective ranks of the raw encoder feature and both raw projections on the held-out test pairs (the
    collapse diagnostic, as the pre-training bundle's ``geom_erank_*``), with the same text path as retrieval."""
    import torch
    from monai.data import DataLoader, Dataset

    from mflag_monai.metrics.geometry import effective_rank
    from mflag_monai.transforms import cxr_eval_transforms

    reports = report_texts(data, work)
    test = classification_splits(data, 1.0, 0, work)["test"]
    loader = DataLoader(
        Dataset(test, cxr_eval_transforms(resize=design.resize, image_size=design.image_size)), batch_size=64
    )
    model.eval()
    with torch.no_grad():
        features = torch.cat([model.image_encoder(batch["image"].to(design.device)) for batch in loader])
        texts = [reports[e["image"]] for e in test]
        text_proj = torch.cat([model.encode_text(texts[i : i + 64]) for i in range(0, len(texts), 64)])
        return {
            "erank_image_proj": round(effective_rank(model.image_projector(features)), 2),
            "erank_text_proj": round(effective_rank(text_proj), 2),
            "erank_feature": round(effective_rank(features), 2),
        }


# -------------------------------------------------------------------------------------------------- reporting


def summarise(values: list[float]) -> dict:
    """``{"mean", "std", "values"}`` (population std over seeds)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": round(mean, 4), "std": round(std, 4), "values": values}


def markdown_tables(results: dict) -> str:
    """Downstream table (mean +- std over seeds) and the pre-training table (retrieval, zero-shot, final losses)."""
    fractions = results["fractions"]
    lines = ["| task (metric) | encoder | " + " | ".join(f"{float(f):.0%} of labels" for f in fractions) + " |",
             "|" + "---|" * (2 + len(fractions))]  # fmt: skip
    for task, per_encoder in results["scores"].items():
        for encoder, per_fraction in per_encoder.items():
            cells = [f"{per_fraction[str(f)]['mean']:.3f} ± {per_fraction[str(f)]['std']:.3f}" if str(f) in per_fraction else "–"
                     for f in fractions]  # fmt: skip
            lines.append(f"| {task} ({results['metrics'][task]}) | {encoder} | " + " | ".join(cells) + " |")
    pre = results.get("pretraining", {})
    if pre:
        first = next(iter(next(iter(pre.values())).values()))  # every run scores the same test pairs
        chance = first["retrieval_chance"]
        lines += ["", f"Image→report retrieval on {first['retrieval_pairs']} held-out MIMIC-CXR test pairs "
                  f"(chance R@1/5/10 = {chance['R@1']:.3f} / {chance['R@5']:.3f} / {chance['R@10']:.3f}), zero-shot mean "
                  "AUROC from text prompts, the last epoch's loss and the eval-mode effective ranks on the same pairs "
                  "(mean ± std over seeds):", "",
                  "| encoder | R@1 | R@5 | R@10 | zero-shot AUROC | final loss | erank image proj / text proj / feature | minutes |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for encoder, s in results["pretraining_summary"].items():
            cells = [f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}" for k in ("R@1", "R@5", "R@10", "zero_shot", "loss")]
            ranks = " / ".join(f"{s[k]['mean']:.1f}" for k in ("erank_image_proj", "erank_text_proj", "erank_feature"))
            cells += [ranks, f"{s['minutes']['mean']:.1f}"]
            lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    lines += per_label_table(results)
    return "\n".join(lines)


def per_label_table(results: dict) -> list[str]:
    """Markdown lines: the classification probe's AUROC per label at the largest label fraction (mean over seeds)."""
    per_encoder = results.get("per_label", {}).get("classification", {})
    if not per_encoder:
        return []
    fraction = str(max(results["fractions"]))
    labels = list(next(iter(per_encoder.values()))[fraction])
    # labels without both classes in the test split have no AUROC (nan for every encoder): left out, as in the mean
    labels = [lb for lb in labels if any(not math.isnan(p[fraction][lb]["mean"]) for p in per_encoder.values())]
    lines = ["", f"Classification probe, AUROC per label at {float(fraction):.0%} of labels (mean over seeds):", "",
             "| encoder | " + " | ".join(labels) + " |", "|" + "---|" * (1 + len(labels))]  # fmt: skip
    for encoder, per_fraction in per_encoder.items():
        cells = [f"{per_fraction[fraction][label]['mean']:.3f}" for label in labels]
        lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    return lines


def summarise_pretraining(pre: dict[str, dict[str, dict]]) -> dict:
    """Per encoder, mean +- std over seeds of the retrieval, zero-shot, final loss, projection ranks and run time."""
    out = {}
    for encoder, per_seed in pre.items():
        runs = list(per_seed.values())
        pick = {
            "R@1": [r["retrieval_image_to_report"]["R@1"] for r in runs],
            "R@5": [r["retrieval_image_to_report"]["R@5"] for r in runs],
            "R@10": [r["retrieval_image_to_report"]["R@10"] for r in runs],
            "zero_shot": [r["zero_shot_mean_auroc"] for r in runs],
            "loss": [r["final"]["train_loss"] for r in runs],
            **{k: [r["geometry"][k] for r in runs] for k in ("erank_image_proj", "erank_text_proj", "erank_feature")},
            "minutes": [r["seconds"] / 60 for r in runs],
        }
        out[encoder] = {k: summarise([round(v, 4) for v in values]) for k, values in pick.items()}
    return out


def plot_transfer(results: dict, path: Path) -> None:
    """Metric vs label fraction, one panel per task, one line per encoder, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["scores"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.4 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for encoder, per_fraction in results["scores"][task].items():
            xs = [f for f in results["fractions"] if str(f) in per_fraction]
            ax.errorbar(xs, [per_fraction[str(f)]["mean"] for f in xs], yerr=[per_fraction[str(f)]["std"] for f in xs],
                        marker="o", capsize=3, label=encoder, linestyle="--" if encoder == "text-ceiling" else "-")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("fraction of training labels")
        ax.set_ylabel(results["metrics"][task])
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pretrain_spectra(roots: dict[str, Path], path: Path) -> dict[str, list[float]]:
    """Singular-value spectra of the encoder feature at the end of pre-training (``eval/spectrum.json``), one run each."""
    from mflag_monai.utils.plots import plot_spectra

    spectra = {}
    for name, root in roots.items():
        spectrum_file = root / "eval" / "spectrum.json"
        if spectrum_file.is_file():
            content = json.loads(spectrum_file.read_text())
            spectra[name] = content["spectra"]["image_feature"] if "spectra" in content else content["image_feature"]
    if spectra:
        plot_spectra(spectra, path)
    return spectra


# ------------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--out", type=Path, default=REPO / "docs" / "results", help="where results.json/.md and the plots go")
    add("--work", type=Path, default=REPO / "eval" / "benchmark_transfer", help="bundle roots and logs of every run")
    add("--tasks", nargs="+", default=list(DEFAULT_TASKS), choices=TASKS,
        help="downstream tasks (default: classification segmentation; detection is at its floor at 64 px)")  # fmt: skip
    add("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS, help="encoder rows (default: all)")
    add(
        "--fractions",
        nargs="+",
        type=float,
        default=[0.01, 0.1],
        help="label fractions (default 0.01 0.1: the corpus stays >= 10x the largest labelled set)",
    )
    add("--seeds", nargs="+", type=int, default=[0, 1, 2], help="one pre-training and label draw per seed")
    add("--pretrain-epochs", type=int, help=f"pre-training epochs (default: the design's, {DEFAULT_EPOCHS} on the CPU)")
    add("--pretrain-batch", type=int, help="pre-training batch (micro-batches of at most 128; default: the design's)")
    add(
        "--lr",
        action="append",
        default=[],
        metavar="OBJECTIVE=LR",
        help="pre-training learning rate of an objective, e.g. --lr infonce=1e-3 (default: the design's)",
    )
    add(
        "--sweep-epochs",
        nargs="+",
        type=int,
        metavar="EPOCHS",
        help="the budget sweep instead of the benchmark: probe AUROC (10%% of labels) and R@5 against pre-training "
        "length for --objectives, drawn in curves.png",
    )
    add(
        "--objectives",
        nargs="+",
        default=["infonce", "mflag"],
        choices=list(VARIANTS),
        help="--sweep-epochs: the encoder rows to sweep (default infonce mflag)",
    )
    add(
        "--dataset",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="a real dataset folder (or datalist .json) for pretrain/classification/segmentation/detection",
    )
    add("--quick", action="store_true", help="tiny sizes: checks every step in minutes (numbers mean nothing)")
    add(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: the GPU design (224 px, 24 epochs; see cuda_design)",
    )
    add("--protocol", action="store_true", help="the paper's settings (GPU); needs the two options below")
    add("--pretrained-image-weights", help="--protocol: torchvision-layout ImageNet ResNet-50 weights (.pth)")
    add("--text-model", help="--protocol: local folder of CXR-BERT (microsoft/BiomedVLP-CXR-BERT-general)")
    add("--fresh", action="store_true", help="redo runs whose outputs exist")
    return parser.parse_args(argv), parser  # fmt: skip


def make_design(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Design:
    """The design the options ask for (refusing --protocol without its local weights and language model)."""
    if args.protocol:
        missing = [flag for flag, value in (("--pretrained-image-weights", args.pretrained_image_weights),
                                            ("--text-model", args.text_model)) if not value]  # fmt: skip
        if missing:
            parser.error(f"--protocol needs {' and '.join(missing)}: the paper starts from ImageNet ResNet-50 weights "
                         "and aligns to CXR-BERT, and nothing is downloaded here (give local paths)")  # fmt: skip
        for path in (args.pretrained_image_weights, args.text_model):
            if not Path(path).exists():
                parser.error(f"{path}: not found")
        design = protocol_design(args.pretrained_image_weights, args.text_model)
    elif args.quick:
        design = quick_design()
    elif args.device == "cuda":
        design = cuda_design()
    else:
        design = cpu_design()
    if args.pretrain_epochs:
        design.pretrain_epochs = args.pretrain_epochs
    if args.pretrain_batch:  # larger batches in micro-batches of at most 128 (gradient caching: the whole batch's loss)
        design.pretrain.update(batch_size=args.pretrain_batch)
        if args.pretrain_batch > 128:
            design.pretrain["micro_batch_size"] = 128
    for item in args.lr:
        objective, _, value = item.partition("=")
        if objective not in design.learning_rates:
            parser.error(f"--lr {item}: the objective is one of {', '.join(design.learning_rates)}")
        try:
            design.learning_rates[objective] = float(value)
        except ValueError:
            parser.error(f"--lr {item}: the learning rate is not a number")
    return design


def prepare_data(
    args: argparse.Namespace, parser: argparse.ArgumentParser, design: Design, work: Path
) -> dict[str, Path]:
    """The data folder of pre-training and of each task: given with --dataset, else the demo generated into ``work``."""
    datasets = dict(item.split("=", 1) for item in args.dataset)
    unknown = set(datasets) - {"pretrain", *TASKS}
    if unknown:
        parser.error(f"--dataset names one of pretrain, {', '.join(TASKS)}; got {sorted(unknown)}")
    if len(datasets) < 1 + len(args.tasks):  # some data comes from the demo generator, into the work folder
        if design.demo_studies == 0:
            parser.error("--protocol runs on real data: give --dataset for pretrain and every task")
        from mflag_monai.data.demo import generate_demo_data

        generate_demo_data(work / "demo", num_studies=design.demo_studies, image_size=design.demo_image_size,
                           counts=design.demo_counts, progress=True)  # fmt: skip
    return {
        name: Path(datasets[name]) if name in datasets else work / "demo" / TASK_DATA[name][1] for name in TASK_DATA
    }


def pretrain_all(encoders: list[str], seeds: list[int], folders: dict[str, Path], design: Design, work: Path,
                 fresh: bool, epochs: int | None = None) -> tuple[dict, dict[str, dict[int, str | None]]]:  # fmt: skip
    """Pre-train every (encoder row, seed); the run folders and ``{encoder: {seed: encoder.pt or None}}``."""
    roots = {(e, s): pretrain(e, s, folders["pretrain"], design, work, fresh, epochs)
             for s in seeds for e in encoders if e != "random"}  # fmt: skip
    weights: dict[str, dict[int, str | None]] = {e: {s: None for s in seeds} for e in encoders}
    for (e, s), root in roots.items():
        weights[e][s] = str(root / "models" / "encoder.pt")
    return roots, weights


def downstream_scores(args: argparse.Namespace, design: Design, folders: dict[str, Path], weights: dict,
                      work: Path, timings: dict[str, float], per_label: dict | None = None) -> dict:  # fmt: skip
    """``{task: {encoder: {fraction: [score per seed]}}}`` for the tasks asked for (and the classification probe's
    per-label AUROCs into ``per_label``)."""
    raw: dict[str, dict[str, dict[str, list[float]]]] = {}
    if "classification" in args.tasks:
        t = time.time()
        raw["classification"] = classification_cells(
            weights, folders["classification"], design, args.fractions, args.seeds, work, per_label=per_label
        )
        timings["classification"] = time.time() - t
    for task in (t for t in args.tasks if t != "classification"):
        t = time.time()
        for fraction in args.fractions:
            for seed in args.seeds:
                for encoder in args.encoders:
                    value = downstream_bundle(
                        task, encoder, fraction, seed, folders[task], weights[encoder][seed], design, work, args.fresh
                    )
                    raw.setdefault(task, {}).setdefault(encoder, {}).setdefault(str(fraction), []).append(
                        round(value, 4)
                    )
        timings[task] = time.time() - t
    return raw


def design_record(design: Design, seeds: list[int]) -> dict:
    """The design as results.json keeps it."""
    return {
        "depth": design.depth, "image_size": design.image_size, "resize": design.resize,
        "demo_studies": design.demo_studies, "demo_counts": design.demo_counts,
        "pretrain_epochs": design.pretrain_epochs, "learning_rates": design.learning_rates,
        "pretrain": design.pretrain, "variants": VARIANTS, "downstream": design.downstream,
        "text_model": design.text_model, "seeds": seeds,
    }  # fmt: skip


def run_info(argv: list[str] | None, start: float, timings: dict[str, float]) -> dict:
    """Command, machine, load and time of this run."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores, python {platform.python_version()}",
        "load_average_at_end": round(load, 2),
        "minutes": round((time.time() - start) / 60, 1),
        "minutes_per_stage": {k: round(v / 60, 1) for k, v in timings.items()},
    }


def run_benchmark(args, argv, design: Design, folders: dict[str, Path], work: Path, start: float, timings) -> dict:
    """Pre-training, what it learnt, the downstream cells; writes results.json/.md, transfer.png, spectra.png."""
    t = time.time()
    roots, weights = pretrain_all(args.encoders, args.seeds, folders, design, work, args.fresh)
    timings["pre-training"] = time.time() - t
    t = time.time()
    pretrained = [e for e in args.encoders if e != "random"]
    pre = {
        e: {str(s): pretraining_report(roots[(e, s)], folders["pretrain"], design, work) for s in args.seeds}
        for e in pretrained
    }
    timings["retrieval + zero-shot + geometry"] = time.time() - t
    per_label: dict = {}
    raw = downstream_scores(args, design, folders, weights, work, timings, per_label)
    args.out.mkdir(parents=True, exist_ok=True)
    spectra = plot_pretrain_spectra({e: roots[(e, args.seeds[0])] for e in pretrained}, args.out / "spectra.png")
    results = {
        **run_info(argv, start, timings),
        "design": design_record(design, args.seeds),
        "datasets": {k: str(v) for k, v in folders.items()},
        "sizes": dataset_sizes(folders, args.fractions, args.seeds[0], work),
        "fractions": args.fractions,
        "metrics": {t: METRIC_NAMES[t] for t in args.tasks},
        "scores": {
            task: {enc: {f: summarise(v) for f, v in per_f.items()} for enc, per_f in per_enc.items()}
            for task, per_enc in raw.items()
        },
        "per_label": {
            "classification": {
                enc: {f: {label: summarise(v) for label, v in per_l.items()} for f, per_l in per_f.items()}
                for enc, per_f in per_label.items()
            }
        },
        "pretraining": pre,
        "pretraining_summary": summarise_pretraining(pre),
        "spectra": spectra,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    tables = markdown_tables(results)
    (args.out / "results.md").write_text(tables + "\n")
    plot_transfer(results, args.out / "transfer.png")
    print(tables)
    return results


def run_sweep(args, argv, design: Design, folders: dict[str, Path], work: Path, start: float, timings) -> dict:
    """The budget sweep: probe AUROC at 10% of labels and R@5 against pre-training steps for each of
    ``--objectives``, next to the random encoder; writes sweep.json and curves.png."""
    steps_per_epoch = len(report_splits(folders["pretrain"], work)["training"]) // int(design.pretrain["batch_size"])
    sweep: dict = {"random": {}, "objectives": {}}
    random_scores = classification_cells({"random": dict.fromkeys(args.seeds)}, folders["classification"], design,
                                         [0.1], args.seeds, work, text_ceiling=False)  # fmt: skip
    sweep["random"] = summarise(random_scores["random"]["0.1"])
    for epochs in args.sweep_epochs:
        roots, weights = pretrain_all(args.objectives, args.seeds, folders, design, work, args.fresh, epochs)
        probe = classification_cells({e: weights[e] for e in args.objectives}, folders["classification"], design,
                                     [0.1], args.seeds, work, text_ceiling=False)  # fmt: skip
        for e in args.objectives:
            reports = [pretraining_report(roots[(e, s)], folders["pretrain"], design, work) for s in args.seeds]
            sweep["objectives"].setdefault(e, []).append({
                "epochs": epochs, "steps": epochs * steps_per_epoch,
                "learning_rate": design.learning_rates[str(VARIANTS[e]["objective"])],
                "probe_10pct": summarise(probe[e]["0.1"]),
                "R@5": summarise([round(r["retrieval_image_to_report"]["R@5"], 4) for r in reports]),
                "erank_image_proj": summarise([r["geometry"]["erank_image_proj"] for r in reports]),
                "final_loss": summarise([r["final"]["train_loss"] for r in reports]),
                "minutes": summarise([round(r["seconds"] / 60, 2) for r in reports]),
                "command": run_info(argv, start, timings)["command"],  # kept with the point when sweeps merge
            })  # fmt: skip
    sweep["chance_R@5"] = reports[0]["retrieval_chance"]["R@5"]
    sweep["objectives"] = merge_sweeps(args.out / "sweep.json", sweep["objectives"], args.seeds)
    for points in sweep["objectives"].values():
        for p in points:
            p["control"] = control_verdict(p["probe_10pct"], sweep["random"], p["R@5"], sweep["chance_R@5"])
    timings["sweep"] = time.time() - start
    out = {**run_info(argv, start, timings), "design": design_record(design, args.seeds), "sweep": sweep}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(out, indent=1))
    plot_curves(sweep, args.out / "curves.png")
    for e, points in sweep["objectives"].items():
        for p in points:
            print(f"{e:<18} {p['epochs']:>3} epochs ({p['steps']:>4} steps): probe 10% {p['probe_10pct']['mean']:.3f} "
                  f"± {p['probe_10pct']['std']:.3f} (random {sweep['random']['mean']:.3f} ± {sweep['random']['std']:.3f})"
                  f", R@5 {p['R@5']['mean']:.3f} (3x chance {3 * sweep['chance_R@5']:.3f}); "
                  f"{'passes' if p['control']['passes'] else 'fails'} as a positive control")  # fmt: skip
    return out


def merge_sweeps(previous_file: Path, objectives: dict[str, list[dict]], seeds: list[int]) -> dict[str, list[dict]]:
    """The points of an earlier sweep in the same ``--out`` (same seeds) kept beside this run's, so a sweep can run
    in parts (one objective or budget at a time); a point at the same epochs is replaced by this run's."""
    if not previous_file.is_file():
        return objectives
    previous = json.loads(previous_file.read_text())
    if previous.get("design", {}).get("seeds") != seeds:
        return objectives
    merged = {name: list(points) for name, points in previous["sweep"]["objectives"].items()}
    for name, points in objectives.items():
        epochs = {p["epochs"] for p in points}
        kept = [p for p in merged.get(name, []) if p["epochs"] not in epochs]
        merged[name] = sorted(kept + points, key=lambda p: p["epochs"])
    return merged


def control_verdict(probe: dict, random: dict, r5: dict, chance_r5: float) -> dict:
    """Whether a pre-trained encoder passes as a positive control: its 10% probe above the random encoder's by more
    than 2 σ, with σ the combined spread of both over seeds (``sqrt(σ² + σ_random²)``, the stricter reading), and its
    mean R@5 at least 3x chance."""
    spread = math.sqrt(probe["std"] ** 2 + random["std"] ** 2)
    margin = (probe["mean"] - random["mean"]) / spread if spread > 0 else math.inf * (probe["mean"] - random["mean"])
    return {
        "probe_margin_sigma": round(margin, 2),
        "R@5_over_chance": round(r5["mean"] / chance_r5, 2),
        "passes": bool(margin > 2 and r5["mean"] >= 3 * chance_r5),
    }


def plot_curves(sweep: dict, path: Path) -> None:
    """Probe AUROC (10% of labels) and R@5 against pre-training steps, mean ± std over seeds, with the references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (probe_ax, r5_ax) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    rnd = sweep["random"]
    probe_ax.axhspan(rnd["mean"] - 2 * rnd["std"], rnd["mean"] + 2 * rnd["std"], color="grey", alpha=0.2)
    probe_ax.axhline(rnd["mean"], color="grey", linestyle="--", label="random encoder (± 2σ)")
    r5_ax.axhline(sweep["chance_R@5"], color="grey", linestyle="--", label="chance")
    r5_ax.axhline(3 * sweep["chance_R@5"], color="black", linestyle=":", label="3× chance")
    for name, points in sweep["objectives"].items():
        steps = [p["steps"] for p in points]
        for ax, key in ((probe_ax, "probe_10pct"), (r5_ax, "R@5")):
            ax.errorbar(steps, [p[key]["mean"] for p in points], yerr=[p[key]["std"] for p in points], marker="o",
                        capsize=3, label=name)  # fmt: skip
    probe_ax.set_ylabel("probe mean AUROC, 10% of labels")
    r5_ax.set_ylabel("image→report R@5")
    for ax in (probe_ax, r5_ax):
        ax.set_xlabel("pre-training steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: the benchmark, or with --sweep-epochs the budget sweep."""
    args, parser = parse_args(argv)
    design = make_design(args, parser)
    work = args.work.resolve()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.time()
    folders = prepare_data(args, parser, design, work)
    timings = {"demo data": time.time() - start}
    if args.sweep_epochs:
        run_sweep(args, argv, design, folders, work, start, timings)
    else:
        results = run_benchmark(args, argv, design, folders, work, start, timings)
        print(f"\n{results['minutes']} min ({results['minutes_per_stage']}); results in {args.out}")
    return 0


def dataset_sizes(folders: dict[str, Path], fractions: list[float], seed: int, work: Path) -> dict:
    """Entries per split at the largest fraction: the corpus-to-labels ratio in numbers (pre-training: its corpus)."""
    report_texts(folders["pretrain"], work)  # writes the pre-training datalist
    pretraining = json.loads((work / "datalists" / "pretrain.json").read_text())
    sizes = {"pretrain": {k: len(v) for k, v in pretraining.items() if isinstance(v, list)}}
    for name in TASKS:
        if name == "classification":
            splits = classification_splits(folders[name], max(fractions), seed, work)
        else:
            found = sorted(work.glob(f"{name}-random-{max(fractions):g}-seed{seed}/models/datalist_*.json"))
            if not found:
                continue
            splits = json.loads(found[0].read_text())
        sizes[name] = {k: len(v) for k, v in splits.items() if isinstance(v, list)}
    return sizes


if __name__ == "__main__":
    sys.exit(main())
