"""The demo data's public API: :func:`generate_demo_data` / :func:`ensure_demo_data` write the four data sets under
one root (atomically, skipped when ``demo.json`` records the same parameters); :func:`main` is the command line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .chexpert import plan_chexpert, write_chexpert
from .common import DATASET_DIRS, DEMO_VERSION
from .mimic import plan_mimic, write_mimic
from .rsna import plan_rsna, write_rsna
from .siim import plan_siim, write_siim

_DESCRIPTION = (
    "The built-in demo data: small synthetic versions of the public data sets, on disk in their official formats."
)

__all__ = ["DEMO_COUNTS", "default_demo_dir", "ensure_demo_data", "format_summary", "generate_demo_data", "main"]


def default_demo_dir() -> Path:
    """Where the demo data lives by default: ``$MFLAG_MONAI_DEMO_DIR``, else ``~/.cache/mflag_monai/demo``."""
    env = os.environ.get("MFLAG_MONAI_DEMO_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mflag_monai" / "demo"


def generate_demo_data(
    out_dir: str | os.PathLike | None = None,
    num_studies: int = 300,
    seed: int = 42,
    image_size: int = 320,
    overwrite: bool = False,
    progress: bool = True,
    counts: dict[str, int] | None = None,
) -> Path:
    """Write the four demo data sets under ``out_dir`` and return that folder.

    Nothing is done when ``out_dir/demo.json`` already records the same parameters (and
    ``overwrite`` is false). Otherwise everything is written to a temporary sibling folder
    that then replaces ``out_dir``, so a reader never sees a half-written data set.

    Args:
        out_dir: the demo root (default :func:`default_demo_dir`). An existing folder is only
            replaced if it is empty or holds a previous demo (a ``demo.json``).
        num_studies: MIMIC-CXR studies; the other data sets scale with it (about half as many
            images for CheXpert train, RSNA and SIIM; up to 40 CheXpert valid images).
        seed: the one seed every UID, name, date, finding and pixel derives from.
        image_size: nominal image side in pixels (MIMIC and CheXpert sizes vary around it;
            RSNA and SIIM images are ``image_size`` square).
        overwrite: regenerate even when the parameters match.
        progress: show a tqdm progress bar.
        counts: image counts that replace the ones derived from ``num_studies``, by key of
            :data:`DEMO_COUNTS` (e.g. ``{"chexpert-valid": 240}`` for a larger CheXpert test split).

    Returns:
        The demo root.
    """
    if num_studies < 10:
        raise ValueError("num_studies must be at least 10 (every data set needs a few of each kind)")
    if image_size < 64:
        raise ValueError("image_size must be at least 64 pixels")
    root = Path(out_dir).expanduser() if out_dir is not None else default_demo_dir()
    params: dict[str, Any] = {"num_studies": int(num_studies), "seed": int(seed), "image_size": int(image_size)}
    unknown = set(counts or {}) - set(DEMO_COUNTS)
    if unknown:
        raise ValueError(f"counts: unknown keys {sorted(unknown)}; expected some of {list(DEMO_COUNTS)}")
    if counts:  # recorded only when given, so that existing demo folders stay valid
        params["counts"] = {k: int(counts[k]) for k in sorted(counts)}
    if not overwrite and _read_stamp(root) == _stamp(params):
        return root
    if root.exists() and any(root.iterdir()) and not (root / "demo.json").is_file():
        raise FileExistsError(f"{root} is not empty and holds no demo.json: refusing to replace it")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        summary = _generate(tmp, progress=progress, **params)
        stamp = {**_stamp(params), "summary": summary}
        (tmp / "demo.json").write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        _swap_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_demo_data(out_dir: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Return the demo root, generating it if missing or made with other parameters.

    Args:
        out_dir: the demo root (default :func:`default_demo_dir`).
        kwargs: :func:`generate_demo_data` arguments (``num_studies``, ``seed``, ``image_size``, ...).
    """
    return generate_demo_data(out_dir, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m mflag_monai.data.demo --out DIR --num-studies N --seed S --image-size PX``."""
    parser = argparse.ArgumentParser(prog="python -m mflag_monai.data.demo", description=_DESCRIPTION)
    parser.add_argument("--out", default=None, help=f"demo root (default: {default_demo_dir()})")
    parser.add_argument("--num-studies", "--num_studies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--image-size", "--image_size", type=int, default=320)
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args(argv)
    root = generate_demo_data(
        args.out, num_studies=args.num_studies, seed=args.seed, image_size=args.image_size, overwrite=args.overwrite
    )
    print(f"Demo data at {root}")
    print(format_summary(json.loads((root / "demo.json").read_text())["summary"]))
    return 0


#: Image counts of the derived data sets as functions of ``num_studies`` (``counts`` overrides them).
DEMO_COUNTS: dict[str, Callable[[int], int]] = {
    "chexpert-train": lambda n: n // 2,
    "chexpert-valid": lambda n: int(np.clip(n // 7, 8, 40)),
    "rsna-pneumonia": lambda n: max(6, n // 2),
    "siim-pneumothorax": lambda n: max(6, n // 2),
}


def _counts(num_studies: int, counts: dict[str, int] | None) -> dict[str, int]:
    return {k: int((counts or {}).get(k, rule(num_studies))) for k, rule in DEMO_COUNTS.items()}


def format_summary(summary: dict[str, dict[str, int]]) -> str:
    """Render the ``summary`` of ``demo.json`` as indented text, one data set per block."""
    lines = []
    for name, counts in summary.items():
        lines.append(f"{name}:")
        lines.extend(f"  {key}: {value}" for key, value in counts.items())
    return "\n".join(lines)


def _stamp(params: dict[str, int]) -> dict[str, Any]:
    return {"demo_version": DEMO_VERSION, "parameters": params}


def _read_stamp(root: Path) -> dict[str, Any] | None:
    """The parameters recorded in ``root/demo.json`` (without the summary), or None."""
    try:
        stamp = json.loads((root / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    return {k: stamp.get(k) for k in ("demo_version", "parameters")}


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Replace ``root`` by ``tmp`` with renames, tolerating a concurrent generator."""
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        root.rename(old)
    try:
        tmp.rename(root)
    except OSError:
        # Another process put a folder there first: keep its (identical) result.
        if not (root / "demo.json").is_file():
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _generate(
    root: Path,
    num_studies: int,
    seed: int,
    image_size: int,
    progress: bool = True,
    counts: dict[str, int] | None = None,
) -> dict[str, dict[str, int]]:
    """Write all four data sets under ``root``; return the per-data-set summary."""
    n = _counts(num_studies, counts)
    mimic = plan_mimic(seed, num_studies, image_size)
    chexpert = plan_chexpert(seed, n["chexpert-train"], n["chexpert-valid"], image_size)
    rsna = plan_rsna(seed, n["rsna-pneumonia"], image_size)
    siim = plan_siim(seed, n["siim-pneumothorax"], image_size)
    total = sum(len(s.images) for s in mimic) + len(chexpert) + len(rsna) + len(siim)
    summary = {}
    with tqdm(total=total, desc="demo data", unit="img", disable=not progress) as bar:
        summary[DATASET_DIRS["mimic"]] = write_mimic(root, mimic, bar)
        summary[DATASET_DIRS["chexpert"]] = write_chexpert(root, chexpert, bar)
        summary[DATASET_DIRS["rsna"]] = write_rsna(root, rsna, image_size, bar)
        summary[DATASET_DIRS["siim"]] = write_siim(root, siim, image_size, bar)
    return summary
