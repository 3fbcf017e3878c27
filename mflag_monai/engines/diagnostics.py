"""Latent-geometry diagnostics during and after pre-training (effective rank, spectra, alignment, uniformity).

- :class:`LatentGeometryHandler`: every N epochs, runs the model in eval mode over a fixed subset of a split and puts
  ``geom_*`` scalars into ``engine.state.metrics`` (so the stats, TensorBoard, history and MLflow handlers that run
  after it log them), and writes ``spectrum.json`` / ``spectrum.png``.
- :func:`evaluate_geometry`: the same on a trained model's ``model.pt`` (the bundle's ``evaluate.yaml``), written to
  ``geometry.json`` and ``spectrum.png``.
- ``python -m mflag_monai.engines.diagnostics compare A/eval/spectrum.json B/eval/spectrum.json --labels A B --out
  spectra.png``: overlays the spectra of several runs (e.g. with and without the orthogonality loss).

The metric definitions are in :mod:`mflag_monai.metrics.geometry`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
from ignite.engine import Engine, Events
from monai.data import CacheDataset, Dataset, list_data_collate
from torch import nn

from ..metrics.geometry import latent_geometry
from ..utils.dist import rank
from ..utils.io import atomic_write_json
from ..utils.plots import plot_spectra
from .pretrain import MFLAGTrainer, batchnorm_statistics_kept

logger = logging.getLogger(__name__)

__all__ = [
    "GEOMETRY_METRICS",
    "TRAIN_MODE_PREFIX",
    "LatentGeometryHandler",
    "collect_latents",
    "compare_spectra",
    "evaluate_geometry",
    "fixed_subset",
    "geometry_metrics",
    "select_split",
    "trainer_text_inputs",
    "write_geometry",
]

PREFIX = "geom_"
# the same metrics with BatchNorm normalising by each batch's own statistics, as in training (``batchnorm="batch"``)
TRAIN_MODE_PREFIX = "geom_trainmode_"
# the scalars of latent_geometry, logged as geom_<name>
GEOMETRY_METRICS = (
    "erank_feature",
    "erank_image_proj",
    "erank_text_proj",
    "alignment",
    "uniformity_image",
    "uniformity_text",
)
SPECTRUM_LABELS = {"image_feature": "encoder feature", "image_proj": "image projection", "text_proj": "text projection"}


def fixed_subset(data: Sequence[Mapping], max_samples: int | None) -> list[Mapping]:
    """At most ``max_samples`` entries spread evenly over ``data`` (the same ones every call; ``None``/0: all).

    Evenly spaced rather than the first ones: prepared datalists are sorted by patient, so a prefix would see few.
    """
    data = list(data)
    if not max_samples or len(data) <= max_samples:
        return data
    return [data[i * len(data) // max_samples] for i in range(max_samples)]


def select_split(
    data: Mapping[str, Sequence[Mapping]] | Sequence[Mapping],
    split: str,
    fallback: str | None = "training",
    min_samples: int = 2,
) -> tuple[str, list[Mapping]]:
    """``(split name, entries)`` of a datalist dict; ``fallback`` when ``split`` has fewer than ``min_samples`` entries.

    A plain list of entries is returned as it is (named ``split``).
    """
    if not isinstance(data, Mapping):
        return split, list(data)
    entries = list(data.get(split) or [])
    if len(entries) < min_samples and fallback and fallback != split and len(data.get(fallback) or []) >= min_samples:
        logger.warning("Latent geometry: split %r has %d entries; using %r instead.", split, len(entries), fallback)
        return fallback, list(data[fallback])
    return split, entries


def _unwrap(network: nn.Module) -> nn.Module:
    """The plain model under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(network, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(network, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return network
        network = inner


TextInputs = Callable[[dict], tuple[list[str] | None, torch.Tensor | None]]


def trainer_text_inputs(
    network: nn.Module, text_cache=None, report_key: str = "report", feature_key: str = "text_feature"
) -> TextInputs:
    """The pre-training engine's own text path (batch features, else cache lookup, else the frozen LM) without a
    trainer: what evaluation uses, so its text features are exactly those training saw."""
    owner = SimpleNamespace(network=network, text_cache=text_cache, report_key=report_key, feature_key=feature_key)
    return lambda batch: MFLAGTrainer._text_inputs(owner, batch)  # type: ignore[arg-type]


def engine_text_inputs(engine: Engine) -> TextInputs:
    """The text path of the engine the handler is attached to: the pre-training engine's own, else one built from its
    network and text cache (what the language model gave training)."""
    if isinstance(engine, MFLAGTrainer):
        return engine._text_inputs
    return trainer_text_inputs(_unwrap(engine.network), getattr(engine, "text_cache", None))  # type: ignore[attr-defined]


def subset_dataset(
    entries: Sequence[Mapping], transform: Callable, cache: bool, skip_bad_images: bool, label: str
) -> Sequence[Mapping]:
    """A preprocessed dataset of a fixed subset: bad images left out (counted) with ``skip_bad_images``, else cached
    in memory or not. ``label`` names the subset in skip reports."""
    if skip_bad_images:
        from ..data.dataset import build_eval_dataset

        return build_eval_dataset(entries, transform, True, label)
    if cache:
        return CacheDataset(entries, transform, num_workers=None, progress=False)
    return Dataset(entries, transform)


def model_batches(
    dataset: Sequence[Mapping],
    text_inputs: TextInputs,
    device: torch.device | str,
    batch_size: int,
    image_key: str = "image",
    min_size: int = 1,
) -> Iterator[tuple[torch.Tensor, list[str] | None, torch.Tensor | None]]:
    """``(images, texts, text_features)`` per batch of ``dataset``, ready for ``MFLAG.forward`` on ``device``.

    Batches are collated by hand rather than by a ``DataLoader``: a loader draws its base seed from the global RNG,
    and diagnostics must not change the training run they observe. Items that failed to load (``None``) are left
    out, and batches smaller than ``min_size`` are skipped (BatchNorm needs 2 for batch statistics).
    """
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        items = [item for item in items if item is not None]
        if not items or len(items) < min_size:
            continue
        batch = list_data_collate(items)
        texts, features = text_inputs(batch)
        if features is not None:
            features = torch.as_tensor(features).to(device).float()
        images = batch[image_key]
        # a MetaTensor's metadata tracking only slows the forward pass down
        images = images.as_tensor() if hasattr(images, "as_tensor") else torch.as_tensor(images)
        yield images.to(device).float(), texts, features


@torch.no_grad()
def collect_latents(
    network: nn.Module,
    dataset: Sequence[Mapping],
    text_inputs: TextInputs,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    image_key: str = "image",
    batchnorm: str = "eval",
) -> dict[str, torch.Tensor]:
    """Encoder features and both projections (``[N, ·]`` float32 on the CPU) of every item of ``dataset``.

    The model runs without gradients and in float32; its previous mode is restored. ``batchnorm="eval"`` uses the
    running statistics (what a downstream task sees); ``"batch"`` normalises each batch of ``batch_size`` by its own
    statistics, as training does, with the running statistics left untouched. A gap between the two is the sign of a
    network that relies on batch-level information. Batches are collated by hand rather than by a ``DataLoader``: a
    loader draws its base seed from the global RNG, and the diagnostics must not change the training run they observe.
    """
    if batchnorm not in ("eval", "batch"):
        raise ValueError(f"batchnorm must be 'eval' or 'batch', got {batchnorm!r}")
    net = _unwrap(network)
    was_training = net.training
    net.eval()
    batch_norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batchnorm == "batch":
        for m in batch_norms:
            m.train()
    out: dict[str, list[torch.Tensor]] = {"image_feature": [], "image_proj": [], "text_proj": []}
    kept = batchnorm_statistics_kept(net) if batchnorm == "batch" else contextlib.nullcontext()
    try:
        with kept:
            min_size = 2 if batchnorm == "batch" else 1  # a last batch of one has no batch statistics
            for images, texts, features in model_batches(dataset, text_inputs, device, batch_size, image_key, min_size):
                result = net(images, texts=texts, text_features=features)
                for name, parts in out.items():
                    parts.append(getattr(result, name).detach().float().cpu())
    finally:
        net.train(was_training)
    return {name: torch.cat(parts) for name, parts in out.items()}


def geometry_metrics(geometry: Mapping[str, object], prefix: str = PREFIX) -> dict[str, float]:
    """The scalar diagnostics of :func:`~mflag_monai.metrics.latent_geometry`'s result as ``{prefix + name: value}``."""
    return {prefix + name: float(geometry[name]) for name in GEOMETRY_METRICS}


def _spectrum_plot(
    spectra: Mapping[str, Sequence[float]], metrics: Mapping[str, float], path: Path, title: str
) -> Path:
    eranks = {"image_feature": "erank_feature", "image_proj": "erank_image_proj", "text_proj": "erank_text_proj"}
    labelled = {
        f"{SPECTRUM_LABELS.get(k, k)} (erank {metrics.get(PREFIX + eranks.get(k, ''), float('nan')):.1f})": v
        for k, v in spectra.items()
    }
    return plot_spectra(labelled, path, title=title)


class LatentGeometryHandler:
    """Latent-geometry diagnostics of an M-FLAG pre-training run, as epoch metrics.

    Every ``interval`` epochs (and at the last epoch) the trainer's network (DDP/compile wrappers removed) runs in
    eval mode, without gradients, over a fixed subset of ``split`` (at most ``max_samples`` entries, the same every
    time); the text side goes through the trainer's own text path (feature cache, frozen LM for reports missing from
    it). The scalars of :func:`~mflag_monai.metrics.latent_geometry` are written to ``engine.state.metrics`` as
    ``geom_erank_feature``, ``geom_erank_image_proj``, ``geom_erank_text_proj``, ``geom_alignment``,
    ``geom_uniformity_image`` and ``geom_uniformity_text``. On other epochs they are removed, so the handlers that
    log the epoch metrics never repeat stale values.

    Attach it **before** the stats, TensorBoard, history and MLflow handlers: ignite runs ``EPOCH_COMPLETED``
    callbacks in registration order. Under DDP it runs on rank 0 only.

    Args:
        data: a datalist dict (``{"training": [...], "validation": [...], ...}``) or a list of entries.
        transform: deterministic preprocessing of an entry (e.g. ``cxr_eval_transforms``).
        split: the datalist split to sample; ``"training"`` is used when it has fewer than 2 entries.
        interval: epochs between diagnostics; 0 disables the handler.
        max_samples: size of the fixed subset (0: the whole split). The effective rank cannot exceed
            ``samples - 1``: compare runs at the same value.
        batch_size: images per forward pass.
        output_dir: folder for ``spectrum.json`` and ``spectrum.png`` (refreshed each time, so the files always
            describe the newest diagnostics); ``None`` writes nothing.
        cache: keep the preprocessed subset in memory (decoded once, at the first diagnostics).
        image_key: the batch's image key.
        train_mode: also compute the metrics with BatchNorm using each batch's own statistics, as in training
            (``geom_trainmode_*``; running statistics untouched). Eval mode is what a downstream task sees; a gap
            between the two means the network relies on batch-level information that eval mode lacks.
        skip_bad_images: leave out (and count) images that fail to load instead of stopping the run.
    """

    def __init__(
        self,
        data: Mapping[str, Sequence[Mapping]] | Sequence[Mapping],
        transform: Callable,
        split: str = "validation",
        interval: int = 1,
        max_samples: int = 256,
        batch_size: int = 32,
        output_dir: str | os.PathLike | None = None,
        cache: bool = True,
        image_key: str = "image",
        train_mode: bool = True,
        skip_bad_images: bool = False,
    ) -> None:
        self.data = data
        self.train_mode = train_mode
        self.skip_bad_images = skip_bad_images
        self.transform = transform
        self.split = split
        self.interval = int(interval)
        self.max_samples = int(max_samples)
        self.batch_size = batch_size
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.cache = cache
        self.image_key = image_key
        self._dataset: Sequence[Mapping] | None = None
        self._split_used = split
        self.last: dict | None = None  # the newest latent_geometry result

    def attach(self, engine: Engine) -> None:
        """Run at every epoch end (to compute, or to clear the previous values)."""
        if self.interval <= 0:
            return
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def due(self, engine: Engine) -> bool:
        """Whether this epoch gets diagnostics: every ``interval`` epochs and the last one."""
        epoch = engine.state.epoch
        return self.interval > 0 and (epoch % self.interval == 0 or epoch == engine.state.max_epochs)

    def dataset(self) -> Sequence[Mapping]:
        """The fixed, preprocessed subset (built on first use)."""
        if self._dataset is None:
            self._split_used, entries = select_split(self.data, self.split)
            entries = fixed_subset(entries, self.max_samples)
            if len(entries) < 2:
                raise ValueError(f"Latent geometry needs at least 2 samples; split {self.split!r} has {len(entries)}.")
            label = f"{self._split_used} (geometry)"
            self._dataset = subset_dataset(entries, self.transform, self.cache, self.skip_bad_images, label)
        return self._dataset

    def __call__(self, engine: Engine) -> None:
        """Compute and publish the diagnostics (or clear last epoch's values when not due)."""
        for name in GEOMETRY_METRICS:
            engine.state.metrics.pop(PREFIX + name, None)
            engine.state.metrics.pop(TRAIN_MODE_PREFIX + name, None)
        if not self.due(engine) or rank() > 0:
            return
        network = engine.network  # type: ignore[attr-defined]
        text_inputs = engine_text_inputs(engine)
        dataset = self.dataset()
        latents = collect_latents(network, dataset, text_inputs, engine.state.device, self.batch_size, self.image_key)
        self.last = latent_geometry(**latents)
        metrics = geometry_metrics(self.last)
        if self.train_mode:
            batch_stats = collect_latents(
                network, dataset, text_inputs, engine.state.device, self.batch_size, self.image_key, batchnorm="batch"
            )
            metrics.update(geometry_metrics(latent_geometry(**batch_stats), TRAIN_MODE_PREFIX))
        engine.state.metrics.update(metrics)
        logger.info("Latent geometry, epoch %d: %s", engine.state.epoch, {k: round(v, 4) for k, v in metrics.items()})
        if self.output_dir is not None:
            info = {"epoch": engine.state.epoch, "iteration": engine.state.iteration}
            write_geometry(self.last, self.output_dir, "spectrum.json", self._split_used, len(dataset), info)


def write_geometry(
    geometry: Mapping[str, object],
    output_dir: str | os.PathLike,
    json_name: str,
    split: str,
    samples: int,
    info: Mapping | None = None,
    png_name: str = "spectrum.png",
) -> tuple[Path, Path]:
    """Write ``{"metrics", "spectra", "split", "num_samples", **info}`` as JSON and the spectrum plot as PNG."""
    output_dir = Path(output_dir)
    metrics = geometry_metrics(geometry)
    content = {"metrics": metrics, "split": split, "num_samples": samples, **dict(info or {})}
    content["spectra"] = geometry["spectra"]  # last: the long lists
    if "train_mode_metrics" in geometry:
        content["train_mode_metrics"] = geometry["train_mode_metrics"]
    json_path = atomic_write_json(content, output_dir / json_name)
    where = f"epoch {info['epoch']}, " if info and "epoch" in info else ""
    title = f"Spectrum ({where}{split}, {samples} samples)"
    png_path = _spectrum_plot(geometry["spectra"], metrics, output_dir / png_name, title)
    return json_path, png_path


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
    text_inputs = trainer_text_inputs(_unwrap(network), text_cache)
    dataset = Dataset(entries, transform)
    geometry = latent_geometry(**collect_latents(network, dataset, text_inputs, device, batch_size))
    batch_stats = latent_geometry(**collect_latents(network, dataset, text_inputs, device, batch_size, batchnorm="batch"))
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
    return plot_spectra(spectra, out, title=f"Singular-value spectrum: {SPECTRUM_LABELS.get(key, key)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``compare`` overlays the spectra of several runs."""
    description = __doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m mflag_monai.engines.diagnostics", description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="overlay the singular-value spectra of several runs in one PNG")
    compare.add_argument("files", nargs="+", help="spectrum.json (training) or geometry.json (evaluate) of each run")
    compare.add_argument("--labels", nargs="+", help="one legend label per file (default: the paths)")
    compare.add_argument("--key", default="image_feature", choices=sorted(SPECTRUM_LABELS), help="which spectrum")
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
