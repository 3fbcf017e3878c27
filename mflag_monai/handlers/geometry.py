"""Latent-geometry diagnostics during pre-training (effective rank, spectra, alignment, uniformity).

:class:`LatentGeometryHandler`, every N epochs, runs the model in eval mode over a fixed subset of a split and puts
``geom_*`` scalars into ``engine.state.metrics`` (so the stats, TensorBoard, history and MLflow handlers that run after
it log them), and writes ``spectrum.json`` / ``spectrum.png``. The measurement itself is
:mod:`mflag_monai.evaluation.latents` (also behind :func:`mflag_monai.evaluation.evaluate_geometry`); the fixed
subset comes from :mod:`mflag_monai.data.subset`; this module only hooks it into the trainer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

from ignite.engine import Engine, Events

from ..data.subset import fixed_subset, select_split, subset_dataset
from ..evaluation.latents import (
    GEOMETRY_METRICS,
    PREFIX,
    TRAIN_MODE_PREFIX,
    collapse_message,
    collect_latents,
    geometry_metrics,
    write_geometry,
)
from ..metrics.geometry import latent_geometry
from ..networks.mflag import TextInputs, batch_text_inputs
from ..utils.dist import rank

logger = logging.getLogger(__name__)

__all__ = ["LatentGeometryHandler", "engine_text_inputs"]


def engine_text_inputs(engine: Engine) -> Callable[[dict], TextInputs]:
    """The text path of the engine a handler is attached to (its network, text-feature cache and report key): the
    one the trainer uses (:func:`~mflag_monai.networks.batch_text_inputs`), so diagnostics see what training saw."""
    return partial(
        batch_text_inputs,
        network=engine.network,  # type: ignore[attr-defined]
        text_cache=getattr(engine, "text_cache", None),
        report_key=getattr(engine, "report_key", "report"),
    )


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
        demo: the run trains on the built-in demo data, whose small batches keep the orthogonality loss at its floor:
            a collapse there is expected (docs/results/README.md), so the alarm is said at INFO, marked as the demo's.
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
        demo: bool = False,
    ) -> None:
        self.data = data
        self.demo = bool(demo)
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
            if self.demo:
                logger.info(
                    "Demo run: %s Expected at the demo's batch size (its orthogonality loss sits at its floor; "
                    "docs/results/README.md); on real data with the recommended batch this is a warning.",
                    message,
                )
            else:
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
