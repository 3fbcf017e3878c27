"""Latent geometry of a trained M-FLAG model, and the comparison of several runs' spectra.

- :func:`evaluate_geometry`: the diagnostics of :class:`~mflag_monai.handlers.LatentGeometryHandler` on a trained
  model's ``model.pt`` (the pre-training bundle's ``evaluate.yaml``), written to ``geometry.json`` and
  ``spectrum.png``.
- ``python -m mflag_monai.evaluation.geometry compare A/eval/spectrum.json B/eval/spectrum.json --labels A B --out
  spectra.png``: overlays the spectra of several runs (e.g. with and without the orthogonality loss).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
from monai.data import Dataset
from torch import nn

from ..data.subset import fixed_subset, select_split
from ..metrics.geometry import latent_geometry
from ..networks.mflag import batch_text_inputs
from ..utils.plots import plot_spectra
from .latents import LATENT_NAMES, TRAIN_MODE_PREFIX, collect_latents, geometry_metrics, write_geometry

__all__ = ["compare_spectra", "evaluate_geometry", "main"]


def evaluate_geometry(
    network: nn.Module,
    data: Mapping[str, Sequence[Mapping]] | Sequence[Mapping],
    transform: Callable,
    output_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    split: str = "test",
    text_cache=None,
    max_samples: int = 256,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    info: Mapping | None = None,
) -> dict:
    """Latent-geometry diagnostics of a trained M-FLAG model on a split: ``geometry.json`` and ``spectrum.png``.

    Args:
        network: the M-FLAG model (with its frozen text encoder, for reports missing from ``text_cache``).
        data: a datalist dict or a list of entries (image path and ``report``).
        transform: deterministic preprocessing (e.g. ``cxr_eval_transforms``).
        output_dir: where ``geometry.json`` (metrics, spectra, split, sample count) and ``spectrum.png`` go.
        weights: ``model.pt`` (the pre-training bundle's final weights) loaded strictly into ``network``; ``None``
            keeps the network's weights.
        split: the datalist split (no fallback: a missing split is an error).
        text_cache: a :class:`~mflag_monai.data.TextFeatureCache` or ``None`` (frozen LM on every report).
        max_samples: size of the fixed, evenly spread subset (as in training, so the numbers compare).
        info: extra facts written into the JSON.

    Returns:
        The JSON's content.
    """
    from ..networks import load_weights_file

    if weights is not None:
        network.load_state_dict(load_weights_file(weights), strict=True)
    network = network.to(device)
    split_used, entries = select_split(data, split, fallback=None)
    entries = fixed_subset(entries, max_samples)
    if len(entries) < 2:
        raise ValueError(f"Latent geometry needs at least 2 samples; split {split!r} has {len(entries)}.")
    text_inputs = partial(batch_text_inputs, network=network, text_cache=text_cache)
    dataset = Dataset(entries, transform)
    geometry = latent_geometry(**collect_latents(network, dataset, text_inputs, device, batch_size))
    batch_stats = latent_geometry(
        **collect_latents(network, dataset, text_inputs, device, batch_size, batchnorm="batch")
    )
    geometry["train_mode_metrics"] = geometry_metrics(batch_stats, TRAIN_MODE_PREFIX)
    extra = {**({"checkpoint": str(weights)} if weights is not None else {}), **dict(info or {})}
    json_path, png_path = write_geometry(geometry, output_dir, "geometry.json", split_used, len(entries), extra)
    content = json.loads(json_path.read_text())
    summary = ", ".join(f"{k} {v:.4f}" for k, v in content["metrics"].items())
    print(f"Latent geometry on {len(entries)} {split_used} images: {summary} -> {json_path}, {png_path}")
    return content


def _load_spectrum(path: str | os.PathLike, key: str) -> list[float]:
    content = json.loads(Path(path).read_text())
    spectra = content.get("spectra", content)  # spectrum.json / geometry.json, or a bare {name: values}
    if key not in spectra:
        raise KeyError(f"{path} has no {key!r} spectrum (it has {sorted(spectra)}).")
    return [float(v) for v in spectra[key]]


def compare_spectra(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    labels: Sequence[str] | None = None,
    key: str = "image_feature",
) -> Path:
    """Overlay one spectrum (``key``) from several runs' ``spectrum.json`` / ``geometry.json`` in one PNG.

    Args:
        paths: the runs' JSON files.
        out: the PNG to write.
        labels: one legend label per file (default: the file paths).
        key: ``image_feature`` (encoder), ``image_proj`` or ``text_proj``.
    """
    labels = list(labels) if labels else [str(p) for p in paths]
    if len(labels) != len(paths):
        raise ValueError(f"{len(paths)} files but {len(labels)} labels.")
    spectra = {label: _load_spectrum(path, key) for label, path in zip(labels, paths)}
    return plot_spectra(spectra, out, title=f"Singular-value spectrum: {LATENT_NAMES.get(key, key)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``compare`` overlays the spectra of several runs."""
    description = __doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m mflag_monai.evaluation.geometry", description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="overlay the singular-value spectra of several runs in one PNG")
    compare.add_argument("files", nargs="+", help="spectrum.json (training) or geometry.json (evaluate) of each run")
    compare.add_argument("--labels", nargs="+", help="one legend label per file (default: the paths)")
    compare.add_argument("--key", default="image_feature", choices=sorted(LATENT_NAMES), help="which spectrum")
    compare.add_argument("--out", default="spectra.png", help="output PNG")
    args = parser.parse_args(argv)
    try:
        path = compare_spectra(args.files, args.out, args.labels, args.key)
    except (OSError, KeyError, ValueError) as err:
        parser.error(str(err))
    print(f"Spectra of {len(args.files)} runs written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
