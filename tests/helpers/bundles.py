"""Bundle helpers for tests: tiny trained copies of the downstream bundles, the bundle CLI runner, MONAI Label
overrides, and loading scripts (and the MONAI Label app) by file location.

A tiny copy is a folder laid out like the repository's ``bundles/``: each bundle's ``configs`` is a symlink to the
repository's, so the configs under test are the real ones; ``pretrain/models/encoder.pt`` is a random ResNet-18
encoder, found by the downstream bundles' default ``pretrained_encoder`` path (``<bundle_root>/../pretrain/...``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
# The MONAI Label app; not named ``monailabel``, so it cannot shadow the package.
APP = REPO / "scripts" / "monailabel_app"
# What the tiny models are trained with; the MONAI Label app gets the same values as --conf pairs.
TINY = {"image_depth": 18, "image_size": 64}
# Settings of ours, not MONAI Label's, that keep a CPU run short.
FAST = {"batch_size": 2, "num_workers": 0, "fraction": 1.0}


def monailabel_installed() -> bool:
    """Whether the real MONAI Label package (the ``monailabel`` extra) can be imported.

    Any folder called ``monailabel`` on ``sys.path`` imports as a namespace package, so finding a ``monailabel``
    module is not enough: the real package has ``monailabel.interfaces``.
    """
    try:
        spec = importlib.util.find_spec("monailabel")
        return (
            spec is not None
            and spec.origin not in (None, "namespace")
            and importlib.util.find_spec("monailabel.interfaces") is not None
        )
    except (ImportError, ValueError):
        return False


def require_monailabel() -> None:
    """Skip the calling test (or module, at import) unless the ``monailabel`` extra is installed."""
    import pytest

    if not monailabel_installed():
        pytest.skip("the monailabel extra is not installed", allow_module_level=True)


def load_script(path: str | os.PathLike, name: str | None = None) -> ModuleType:
    """Import a script file as a module without putting its folder on ``sys.path`` (which could shadow packages)."""
    path = Path(path)
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def load_app_lib() -> ModuleType:
    """The MONAI Label app's ``lib`` package (``scripts/monailabel_app/lib``), imported from its files.

    MONAI Label puts the app folder on ``sys.path`` and imports ``lib``; this registers the same package under the
    same name without editing ``sys.path``, so ``importlib.import_module("lib.trainers")`` and the package's
    relative imports work.
    """
    lib = APP / "lib"
    spec = importlib.util.spec_from_file_location("lib", lib / "__init__.py", submodule_search_locations=[str(lib)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["lib"] = module
    spec.loader.exec_module(module)
    return module


def make_tiny_encoder(path: Path, depth: int = 18) -> Path:
    """Save a seeded random ResNet encoder ``state_dict`` (torchvision layout) where ``encoder.pt`` would be."""
    from mflag_monai.networks import build_image_encoder

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(build_image_encoder(depth).state_dict(), path)
    return path


def bundle_copy(root: Path, name: str) -> Path:
    """``root/<name>`` with ``configs`` linked to the repository's bundle and an empty ``models/``."""
    bundle = root / name
    (bundle / "models").mkdir(parents=True, exist_ok=True)
    if not (bundle / "configs").exists():
        (bundle / "configs").symlink_to(REPO / "bundles" / name / "configs", target_is_directory=True)
    return bundle


def monailabel_train_overrides(
    bundle: Path, train_data: list[dict], val_data: list[dict] | None, max_epochs: int = 1
) -> dict[str, Any]:
    """The overrides MONAI Label 0.8.5's ``BundleTrainTask.__call__`` passes to ``monai.bundle.run``, built the same way.

    ``train#handlers`` is the bundle's own (unparsed) list with a ``CheckpointLoader`` of ``models/model.pt`` into
    ``$@network`` put first when that file exists (``pretrained`` defaults to true); ``device`` is a string;
    ``validate#dataset#data`` is set when the request has a validation split.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.yaml"))
    parser.config.update({"bundle_root": str(bundle)})
    handlers = parser.get("train#handlers", [])
    model = bundle / "models" / "model.pt"
    if model.exists():
        loader = {
            "_target_": "CheckpointLoader",
            "load_path": str(model),
            "load_dict": {"model": "$@network"},
            "strict": False,
        }
        handlers.insert(0, loader)
    overrides: dict[str, Any] = {
        "bundle_root": str(bundle),
        "train#trainer#max_epochs": max_epochs,
        "train#dataset#data": train_data,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "train#handlers": handlers,
    }
    if val_data is not None:
        overrides["validate#dataset#data"] = val_data
    return overrides


def run_train_workflow(bundle: Path, **overrides: Any) -> Any:
    """Run ``configs/train.yaml`` of ``bundle`` in this process with ``ConfigWorkflow``; return the finished workflow."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        workflow_type="train",
        config_file=str(bundle / "configs" / "train.yaml"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False,  # keep pytest's logging as it is
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


def segmentation_datalist(siim_dir: Path, out_dir: Path) -> dict[str, list[dict]]:
    """The SIIM demo split with mask PNGs (``{"image", "label"}`` only, as MONAI Label's datastore gives them)."""
    from mflag_monai.data import resolve_datalist

    splits = resolve_datalist(
        siim_dir,
        datalist_file=out_dir / "siim.json",
        dataset="siim-pneumothorax",
        fraction=1.0,
        seed=42,
        task="segmentation",
    )
    return {split: [{"image": d["image"], "label": d["label"]} for d in items] for split, items in splits.items()}


def make_tiny_bundles(root: Path, demo: Path) -> Path:
    """``root/bundles`` with a tiny encoder, a segmentation model trained through MONAI Label's trainer overrides
    and a classification model trained by its bundle, each for one epoch on the small demo data."""
    bundles = root / "bundles"
    make_tiny_encoder(bundles / "pretrain" / "models" / "encoder.pt", TINY["image_depth"])

    seg = bundle_copy(bundles, "segmentation")
    data = segmentation_datalist(demo / "siim-pneumothorax", root)
    overrides = monailabel_train_overrides(seg, data["training"], data["validation"], max_epochs=1)
    run_train_workflow(seg, **TINY, **FAST, **overrides)

    cls = bundle_copy(bundles, "classification")
    # the smallest demo has no CheXpert validation images; selecting on its test split still saves a model
    split = {"validate#split": "test"}
    run_train_workflow(cls, bundle_root=str(cls), dataset_dir=str(demo / "chexpert"), epochs=1, **split, **TINY, **FAST)
    for bundle in (seg, cls):
        if not (bundle / "models" / "model.pt").is_file():
            raise RuntimeError(f"no model.pt in {bundle}/models: {sorted(os.listdir(bundle / 'models'))}")
    return bundles


def bundle_args(
    run_id: str | None, configs: Sequence[str | os.PathLike], bundle_root: str | os.PathLike | None, *extra: str
) -> list[str]:
    """``-m monai.bundle run [RUN_ID] --config_file ... [--bundle_root ...] EXTRA``: the command a user types, after
    the interpreter (``run_id`` ``None`` runs the config's own ``run``; several configs are layered in order)."""
    files = [str(c) for c in configs]
    out = ["-m", "monai.bundle", "run", *([run_id] if run_id else [])]
    out += ["--config_file", files[0] if len(files) == 1 else json.dumps(files)]
    if bundle_root is not None:
        out += ["--bundle_root", str(bundle_root)]
    return out + list(extra)


def run_bundle_cli(
    run_id: str | None,
    configs: Sequence[str | os.PathLike],
    bundle_root: str | os.PathLike | None,
    *extra: str,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike = REPO,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run :func:`bundle_args` in a fresh interpreter, offline, from the repository root (or ``cwd``); ``env`` adds
    variables. The one way the tests start a bundle."""
    return subprocess.run(
        [sys.executable, *bundle_args(run_id, configs, bundle_root, *extra)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def downstream_workspace(root: Path, demo: Path) -> dict[str, Path]:
    """``demo`` (the session's 40-study, 96-px demo collection), a tiny ResNet-18 encoder file and a bundle root under
    ``root``."""
    encoder = make_tiny_encoder(root / "encoder.pt")
    return {"root": root, "demo": demo, "encoder": encoder, "bundle": root / "bundle"}


def check_selected_on_validation_loss(bundle_root: Path, output: str, metric: str) -> None:
    """A run with ``--select_on val_loss`` logged both scores every epoch and saved models/model.pt at the epoch of the
    lowest validation loss (the last "New best" line of its log)."""
    history = json.loads((bundle_root / "eval" / "validation_history.json").read_text())
    assert len(history) >= 2 and all({"val_loss", metric} <= set(h) for h in history), history
    best = min(history, key=lambda h: h["val_loss"])
    saved = [(float(v), int(e)) for v, e in re.findall(r"New best ([-+.\deE]+) at epoch (\d+)", output)]
    assert saved and saved[-1] == (round(best["val_loss"], 4), best["epoch"]), (saved, history)
    assert (bundle_root / "models" / "model.pt").is_file()
