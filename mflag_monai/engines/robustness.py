"""Crash safety for the downstream bundles: atomic best-model files that survive a resume, skipped-image counts, and a
stop at the first NaN/inf loss.

MONAI's ``CheckpointSaver`` writes the key-metric model in place (``atomic=False``) and forgets the best score when a
run is resumed, so the first validation after a resume would overwrite a better model. :class:`BestModelSaver`
writes atomically (temporary file, fsync, rename) and has ``state_dict``/``load_state_dict`` so the training
checkpoint carries the best score across a crash.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader
from torch import nn

from ..utils.errors import InputError
from ..utils.io import atomic_torch_save, safe_torch_load

__all__ = [
    "SafeCheckpointLoader",
    "BestModelSaver",
    "NonFiniteLossError",
    "SkippedImageCounter",
    "StopOnNonFiniteLoss",
    "batch_files",
    "non_finite_loss_error",
]

logger = logging.getLogger(__name__)


class BestModelSaver:
    """Save ``network``'s weights to ``filepath`` whenever the evaluator's key metric improves.

    Attach it to a MONAI evaluator that has a ``key_val_metric``; MONAI updates ``state.best_metric`` and
    ``state.best_metric_epoch`` at epoch end before the handlers run, so a new best is seen here the same epoch.

    Args:
        network: the model whose ``state_dict`` is written.
        filepath: the model file (``models/model.pt``).
    """

    def __init__(self, network: nn.Module, filepath: str | os.PathLike) -> None:
        self.network = network
        self.filepath = Path(filepath)
        self.engine: Engine | None = None
        self._best: dict | None = None

    def attach(self, engine: Engine) -> None:
        """Check for a new best at every evaluation; restore a resumed best score when the evaluator starts."""
        self.engine = engine
        engine.add_event_handler(Events.STARTED, self._restore)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._save_if_best)

    def _restore(self, engine: Engine) -> None:
        if self._best is not None:  # a fresh evaluator (after --resume) starts from -1: give it the saved best
            if self._best["best_metric_epoch"] > getattr(engine.state, "best_metric_epoch", -1):
                engine.state.best_metric = self._best["best_metric"]
                engine.state.best_metric_epoch = self._best["best_metric_epoch"]

    def _save_if_best(self, engine: Engine) -> None:
        known = self._best["best_metric_epoch"] if self._best is not None else None  # a best already saved
        if engine.state.best_metric_epoch == engine.state.epoch and engine.state.best_metric_epoch != known:
            atomic_torch_save(self.network.state_dict(), self.filepath)
            logger.info("New best %.4f at epoch %d: %s", engine.state.best_metric, engine.state.epoch, self.filepath)
        self._best = {"best_metric": engine.state.best_metric, "best_metric_epoch": engine.state.best_metric_epoch}

    def state_dict(self) -> dict:
        """The best score so far (what a resumed run must beat)."""
        if self._best is not None:
            return dict(self._best)
        return {"best_metric": -float("inf"), "best_metric_epoch": -1}

    def load_state_dict(self, state: dict) -> None:
        """Carry a checkpoint's best score into this run."""
        self._best = {"best_metric": float(state["best_metric"]), "best_metric_epoch": int(state["best_metric_epoch"])}


class SkippedImageCounter:
    """Count the images a batch lost to decoding errors (``skipped_images`` from
    :func:`mflag_monai.data.skip_none_collate`) and report the run's total as the ``skipped_images`` epoch metric."""

    def __init__(self) -> None:
        self.count = 0

    def attach(self, engine: Engine) -> None:
        """Count after every iteration; publish at every epoch end (before the loggers that follow in the list)."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._count)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _count(self, engine: Engine) -> None:
        batch = engine.state.batch
        if isinstance(batch, dict):
            self.count += int(batch.get("skipped_images", 0))
        else:  # a list batch (skip_none_list)
            self.count += int(getattr(batch, "skipped_images", 0))

    def _publish(self, engine: Engine) -> None:
        engine.state.metrics["skipped_images"] = self.count
        if self.count:
            logger.warning("%d image(s) skipped so far because they failed to load", self.count)


class NonFiniteLossError(InputError):
    """Training produced a NaN or infinite loss; the message names the step and the batch's files."""


def batch_files(batch: object, image_key: str = "image", file_key: str = "image_path", limit: int = 8) -> list[str]:
    """The image files of a batch (dict or list of items): ``file_key`` entries, else the images' MetaTensor
    ``filename_or_obj``; at most ``limit``."""
    items = batch if isinstance(batch, list) else [batch]
    files: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        value = item.get(file_key)
        if value is None:
            meta = getattr(item.get(image_key), "meta", None) or {}
            value = meta.get("filename_or_obj")
        if isinstance(value, str):
            files.append(value)
        elif isinstance(value, (list, tuple)):
            files.extend(str(v) for v in value)
    return files[:limit]


def non_finite_loss_error(
    loss: torch.Tensor | float, epoch: int, iteration: int, batch: object, what: str = "loss"
) -> NonFiniteLossError:
    """The error a NaN/inf loss stops training with: the value, the step and the batch's files."""
    files = batch_files(batch)
    names = ", ".join(files) if files else "(file names not in the batch)"
    return NonFiniteLossError(
        f"{what} is {float(loss)} at epoch {epoch}, iteration {iteration}; training stopped and nothing from this "
        f"step was saved. Check the batch's images and labels (or lower the learning rate): {names}"
    )


class StopOnNonFiniteLoss:
    """Stop training with :class:`NonFiniteLossError` at the first NaN or infinite loss, naming the step and the
    batch's files.

    Ignite's ``TerminateOnNan`` ends the run *normally*: the completion handlers would still save the diverged
    network (as "best", or as the final model) and the process would exit 0. Raising stops everything; the last
    checkpoint written is from before the divergence.

    Args:
        output_key: the loss in ``engine.state.output`` (a dict, or a list of dicts).
    """

    def __init__(self, output_key: str = "loss") -> None:
        self.output_key = output_key

    def attach(self, engine: Engine) -> None:
        """Check after every iteration (before anything at the epoch's end can save)."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Raise when this iteration's loss is not finite."""
        output = engine.state.output
        rows = output if isinstance(output, list) else [output]
        for row in rows:
            loss = row.get(self.output_key) if isinstance(row, dict) else None
            if loss is not None and not bool(torch.isfinite(torch.as_tensor(loss, dtype=torch.float32)).all()):
                value = torch.as_tensor(loss, dtype=torch.float32).reshape(-1)[0]
                raise non_finite_loss_error(value, engine.state.epoch, engine.state.iteration, engine.state.batch)


class SafeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` that first reads the file with :func:`~mflag_monai.utils.io.safe_torch_load`.

    MONAI's loader surfaces torch's raw ``UnpicklingError`` for a file that holds arbitrary objects (without the file
    name, and suggesting ``weights_only=False``) and a bare ``RuntimeError`` for a truncated one; this one refuses
    both in one line that names the file, then loads as MONAI does.
    """

    def __call__(self, engine: Engine) -> None:
        """Check the file, then load it into the objects of ``load_dict``."""
        safe_torch_load(self.load_path, map_location="cpu")
        super().__call__(engine)
