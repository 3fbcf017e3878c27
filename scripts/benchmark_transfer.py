"""What M-FLAG pre-training buys downstream, and what the orthogonality loss does: one command, rerunnable.

1. Pre-trains two encoders with the pre-training bundle on a demo collection larger than the bundle's default:
   ``mflag`` (the paper's losses) and ``mflag-no-orth`` (the ablation: ``--orth_weight 0``).
2. Runs the classification (linear probe), segmentation and detection bundles at each label fraction for three
   encoders: ``random`` (``--pretrained_encoder null``), ``mflag`` and ``mflag-no-orth``; each run trains with the
   bundle's ``training`` and scores the test split with its ``evaluating``.
3. Writes ``results.json`` (the source of truth), ``README``-ready ``results.md``, ``transfer.png`` (metric vs label
   fraction per task) and ``spectra.png`` (singular-value spectra of the encoder feature with and without the
   orthogonality loss) into ``--out`` (default ``docs/results``), and prints the table.

Every step is the bundle command a user types (``python -m monai.bundle run ...``), with overrides; logs of each
run are kept under ``--work``. Runs whose ``eval`` output already exists are reused (``--fresh`` redoes them), so an
interrupted benchmark continues where it stopped.

Usage::

    python scripts/benchmark_transfer.py                       # demo data, sized for about an hour on 2 CPU cores
    python scripts/benchmark_transfer.py --quick               # minutes: tiny demo, ResNet-18, one fraction
    python scripts/benchmark_transfer.py --dataset classification=/data/CheXpert-v1.0-small \\
        --dataset segmentation=/data/siim --dataset detection=/data/rsna --dataset pretrain=/data/mimic-cxr-jpg \\
        --protocol --out results_real                          # the real datasets, the paper's settings (GPU)

``--protocol`` switches the bundles to the paper's settings (224 px, 50 epochs, ...) instead of the CPU demo sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
ENCODERS = ("random", "mflag", "mflag-no-orth")
TASKS = ("classification", "segmentation", "detection")
FRACTIONS = (0.01, 0.1, 1.0)

# the demo folder each task reads, and the headline metric of its evaluate output (eval/metrics.json)
DEMO_FOLDERS = {"pretrain": "mimic-cxr", "classification": "chexpert", "segmentation": "siim-pneumothorax", "detection": "rsna-pneumonia"}
METRICS = {
    "classification": ("mean AUROC", lambda m: m["mean_auroc"]),
    "segmentation": ("Dice", lambda m: m["metrics"]["val_dice"]),
    "detection": ("mAP@[.40:.75]", lambda m: m["mAP"]),
}


@dataclass
class Sizes:
    """Run sizes: the demo defaults fit about an hour on 2 CPU cores; ``--protocol`` uses the paper's."""

    demo_studies: int = 600
    pretrain_epochs: int = 8
    pretrain: list[str] = field(default_factory=list)
    downstream: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in TASKS})
    depth: int = 50


def demo_sizes(quick: bool) -> Sizes:
    """The default demo sizes, or tiny ones (``--quick``, for smoke tests)."""
    if not quick:
        return Sizes()
    tiny = ["--image_size", "64", "--batch_size", "8", "--epochs", "2", "--num_workers", "0"]
    return Sizes(
        demo_studies=60,
        pretrain_epochs=2,
        pretrain=["--resize", "72", "--image_size", "64", "--batch_size", "8", "--num_workers", "0"],
        downstream={t: list(tiny) for t in TASKS},
        depth=18,
    )


def protocol_sizes() -> Sizes:
    """The paper's settings (SPEC §1/§2); meant for a GPU."""
    return Sizes(
        demo_studies=0,
        pretrain_epochs=50,
        pretrain=["--image_size", "224", "--resize", "256", "--batch_size", "512", "--amp", "true"],
        downstream={
            "classification": ["--image_size", "224", "--epochs", "50"],
            "segmentation": ["--image_size", "224", "--epochs", "50"],
            "detection": ["--image_size", "224", "--epochs", "50"],
        },
    )


def run_bundle(run_id: str, configs: list[Path], bundle_root: Path, args: list[str], env: dict, log: Path) -> None:
    """``python -m monai.bundle run RUN_ID`` with overrides; output to ``log``; raises with the log's tail on error."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", json.dumps([str(c) for c in configs]),
           "--bundle_root", str(bundle_root), *args]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        code = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{run_id} of {bundle_root.name} failed (exit {code}); log: {log}\n{tail}")


def pretrain(name: str, data: Path, sizes: Sizes, work: Path, env: dict, fresh: bool) -> Path:
    """Pre-train one encoder (``mflag`` or ``mflag-no-orth``); returns its ``models/`` folder."""
    root = work / f"pretrain-{name}"
    models = root / "models"
    if fresh or not (models / "encoder.pt").is_file():
        args = ["--dataset_dir", str(data), "--image_depth", str(sizes.depth), "--epochs", str(sizes.pretrain_epochs), *sizes.pretrain]
        if name == "mflag-no-orth":
            args += ["--orth_weight", "0.0"]
        print(f"pre-training {name} ...", flush=True)
        run_bundle("training", [BUNDLES / "pretrain" / "configs" / "train.yaml"], root, args, env, work / "logs" / f"pretrain-{name}.log")
    return models


def downstream(task: str, encoder: str, fraction: float, data: Path, encoders: dict[str, Path], sizes: Sizes,
               work: Path, env: dict, fresh: bool) -> float:  # fmt: skip
    """Train and evaluate one (task, encoder, fraction); returns the test metric."""
    root = work / f"{task}-{encoder}-{fraction:g}"
    report = root / "eval" / "metrics.json"
    if fresh or not report.is_file():
        weights = "null" if encoder == "random" else str(encoders[encoder] / "encoder.pt")
        common = ["--dataset_dir", str(data), "--fraction", str(fraction), "--encoder_depth", str(sizes.depth), *sizes.downstream[task]]
        configs = BUNDLES / task / "configs"
        log = work / "logs" / f"{root.name}.log"
        print(f"{task:<15} {encoder:<14} {fraction:>5g} ...", flush=True)
        run_bundle("training", [configs / "train.yaml"], root, [*common, "--pretrained_encoder", weights], env, log)
        # evaluate reads every weight from the trained models/model.pt
        run_bundle("evaluating", [configs / "train.yaml", configs / "evaluate.yaml"], root, common, env, log.with_suffix(".eval.log"))
    return float(METRICS[task][1](json.loads(report.read_text())))


def markdown_table(results: dict) -> str:
    """One row per (task, encoder), one column per label fraction."""
    fractions = results["fractions"]
    head = "| task (metric) | encoder | " + " | ".join(f"{f:.0%} of labels" for f in fractions) + " |"
    rows = [head, "|" + "---|" * (2 + len(fractions))]
    for task, per_encoder in results["scores"].items():
        for encoder, per_fraction in per_encoder.items():
            cells = [f"{per_fraction[str(f)]:.3f}" if str(f) in per_fraction else "–" for f in fractions]
            rows.append(f"| {task} ({METRICS[task][0]}) | {encoder} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_transfer(results: dict, path: Path) -> None:
    """Metric vs label fraction, one panel per task, one line per encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["scores"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for encoder, per_fraction in results["scores"][task].items():
            xs = [f for f in results["fractions"] if str(f) in per_fraction]
            ax.plot(xs, [per_fraction[str(f)] for f in xs], marker="o", label=encoder)
        ax.set_xscale("log")
        ax.set_xlabel("fraction of training labels")
        ax.set_ylabel(METRICS[task][0])
        ax.set_title(task)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pretrain_spectra(encoders: dict[str, Path], path: Path) -> dict[str, list[float]]:
    """Singular-value spectra of the encoder feature from each pre-training run's diagnostics (``eval/spectrum.json``)."""
    from mflag_monai.utils.plots import plot_spectra

    spectra = {}
    for name, models in encoders.items():
        spectrum_file = models.parent / "eval" / "spectrum.json"
        if spectrum_file.is_file():
            content = json.loads(spectrum_file.read_text())
            spectra[name] = content["spectra"]["image_feature"] if "spectra" in content else content["image_feature"]
    if spectra:
        plot_spectra(spectra, path)
    return spectra


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results", help="where results.json/.md and the plots go")
    parser.add_argument("--work", type=Path, default=REPO / "eval" / "benchmark_transfer", help="bundle roots and logs of every run")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    parser.add_argument("--dataset", action="append", default=[], metavar="TASK=PATH",
                        help="a real dataset folder (or datalist .json) for pretrain/classification/segmentation/detection")  # fmt: skip
    parser.add_argument("--demo-studies", type=int, help="size of the generated demo collection (default 600)")
    parser.add_argument("--depth", type=int, choices=(18, 34, 50), help="ResNet depth of every encoder (default 50)")
    parser.add_argument("--pretrain-epochs", type=int, help="pre-training epochs (default 8)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, minutes)")
    parser.add_argument("--protocol", action="store_true", help="the paper's settings (GPU)")
    parser.add_argument("--fresh", action="store_true", help="redo runs whose outputs exist")
    args = parser.parse_args(argv)

    sizes = protocol_sizes() if args.protocol else demo_sizes(args.quick)
    if args.demo_studies:
        sizes.demo_studies = args.demo_studies
    if args.depth:
        sizes.depth = args.depth
    if args.pretrain_epochs:
        sizes.pretrain_epochs = args.pretrain_epochs
    datasets = dict(item.split("=", 1) for item in args.dataset)
    unknown = set(datasets) - {"pretrain", *TASKS}
    if unknown:
        parser.error(f"--dataset names one of pretrain, {', '.join(TASKS)}; got {sorted(unknown)}")
    work = args.work.resolve()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if len(datasets) < 1 + len(args.tasks):  # some data comes from the demo generator, into the work folder
        from mflag_monai.data.demo import generate_demo_data

        demo = generate_demo_data(work / "demo", num_studies=sizes.demo_studies, progress=True)
        env["MFLAG_MONAI_DEMO_DIR"] = str(demo)
    folders = {name: Path(datasets[name]) if name in datasets else work / "demo" / DEMO_FOLDERS[name] for name in DEMO_FOLDERS}

    start = time.time()
    encoders = {e: pretrain(e, folders["pretrain"], sizes, work, env, args.fresh) for e in args.encoders if e != "random"}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for task in args.tasks:
        for fraction in args.fractions:
            for encoder in args.encoders:
                value = downstream(task, encoder, fraction, folders[task], encoders, sizes, work, env, args.fresh)
                scores.setdefault(task, {}).setdefault(encoder, {})[str(fraction)] = round(value, 4)

    args.out.mkdir(parents=True, exist_ok=True)
    spectra = plot_pretrain_spectra(encoders, args.out / "spectra.png")
    results = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores, python {platform.python_version()}",
        "minutes": round((time.time() - start) / 60, 1),
        "datasets": {k: str(v) for k, v in folders.items()},
        "sizes": {"demo_studies": sizes.demo_studies, "pretrain_epochs": sizes.pretrain_epochs, "pretrain": sizes.pretrain, "downstream": sizes.downstream, "depth": sizes.depth},
        "fractions": args.fractions,
        "metrics": {t: METRICS[t][0] for t in args.tasks},
        "scores": scores,
        "spectra": spectra,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown_table(results)
    (args.out / "results.md").write_text(table + "\n")
    plot_transfer(results, args.out / "transfer.png")
    print(table)
    print(f"\n{results['minutes']} min; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
