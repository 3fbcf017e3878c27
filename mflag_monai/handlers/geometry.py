"""Latent-geometry diagnostics during pre-training (effective rank, spectra, alignment, uniformity).

:class:`LatentGeometryHandler`, every N epochs, runs the model in eval mode over a fixed subset of a split and puts
``geom_*`` scalars into ``engine.state.metrics`` (so the stats, TensorBoard, history and MLflow handlers that run after
it log them), and writes ``spectrum.json`` / ``spectrum.png``. The same measurement of a trained model is
:func:`mflag_monai.evaluation.geometry.evaluate_geometry`; the metric definitions are in
:mod:`mflag_monai.metrics.geometry`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from torch import nn

from ..metrics.geometry import latent_geometry
from ..networks.mflag import TextInputs, batch_text_inputs
from ..networks.utils import batchnorm_statistics_kept, unwrap_model
from ..utils.dist import rank
from ..utils.io import atomic_write_json
from ..utils.plots import plot_spectra
from .subset import fixed_subset, model_batches, select_split, subset_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "GEOMETRY_METRICS",
    "PREFIX",
    "LATENT_NAMES",
    "TRAIN_MODE_PREFIX",
    "LatentGeometryHandler",
    "collect_latents",
    "engine_text_inputs",
    "geometry_metrics",
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
LATENT_NAMES = {"image_feature": "encoder feature", "image_proj": "image projection", "text_proj": "text projection"}


def engine_text_inputs(engine: Engine) -> Callable[[dict], TextInputs]:
    """The text path of the engine a handler is attached to (its network, text-feature cache and report key): the
    one the trainer uses (:func:`~mflag_monai.networks.batch_text_inputs`), so diagnostics see what training saw."""
    return partial(
        batch_text_inputs,
        network=engine.network,  # type: ignore[attr-defined]
        text_cache=getattr(engine, "text_cache", None),
        report_key=getattr(engine, "report_key", "report"),
    )


@torch.no_grad()
def collect_latents(
    network: nn.Module,
    dataset: Sequence[Mapping],
    text_inputs: Callable[[dict], TextInputs],
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
    net = unwrap_model(network)
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
        f"{LATENT_NAMES.get(k, k)} (erank {metrics.get(PREFIX + eranks.get(k, ''), float('nan')):.1f})": v
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
        collapse_rank: warn once (the collapse alarm) when the eval-mode effective rank of the image or the report
            projection falls below this (8); 0 turns the alarm off. Silent when the subset has fewer than
            ``2 · collapse_rank + 1`` samples (its rank is capped at ``samples − 1``).
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
        collapse_rank: float = 8.0,
    ) -> None:
        self.data = data
        self.collapse_rank = float(collapse_rank)
        self.collapse_warned = False
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

    def check_collapse(self, metrics: Mapping[str, float], epoch: int, samples: int) -> None:
        """Warn once per run when a projection's effective rank is below ``collapse_rank``."""
        message = None if self.collapse_warned else collapse_message(metrics, self.collapse_rank, epoch, samples)
        if message is not None:
            logger.warning(message)
            self.collapse_warned = True

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
        self.check_collapse(metrics, engine.state.epoch, len(dataset))
        if self.output_dir is not None:
            info = {"epoch": engine.state.epoch, "iteration": engine.state.iteration}
            write_geometry(self.last, self.output_dir, "spectrum.json", self._split_used, len(dataset), info)


COLLAPSE_HELP = (
    "Each projection then maps most studies onto a few directions, so image-report retrieval and zero-shot "
    "classification fall towards chance and the encoder learns little about individual studies. Settings that "
    "help: --orth_feature image_proj (the orthogonality loss on the image projection), --freeze_text_projector true, "
    "--objective infonce (negatives in the loss), or a lower --learning_rate (bundles/pretrain/docs/README.md, "
    "'Projection collapse')."
)


def collapse_message(metrics: Mapping[str, float], threshold: float, epoch: int, samples: int) -> str | None:
    """The collapse alarm's text when the eval-mode effective rank of either projection is below ``threshold``,
    else ``None``."""
    image = metrics.get(PREFIX + "erank_image_proj", float("nan"))
    text = metrics.get(PREFIX + "erank_text_proj", float("nan"))
    if threshold <= 0 or samples - 1 < 2 * threshold:  # too few samples to tell a collapse from the subset's size
        return None
    if not (image < threshold or text < threshold):
        return None
    return (
        f"Projection collapse at epoch {epoch}: effective rank of the image projection {image:.1f}, of the report "
        f"projection {text:.1f} (alarm below {threshold:g}; at most {samples - 1} on {samples} samples). "
        + COLLAPSE_HELP
    )


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
