"""Model and training-state files: crash-safe training checkpoints and the resume from them, the best model of a
validation (atomic, and its best score survives a resume), the encoder export for the downstream bundles, and a
checkpoint loader that refuses unsafe or damaged files in one line.

MONAI's ``CheckpointSaver`` writes in place (``atomic=False``), cannot reference the trainer it is attached to when
declared in a config, and forgets the best score when a run is resumed (so the first validation after a resume would
overwrite a better model); these handlers write every file atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader
from torch import nn

from ..utils.errors import InputError
from ..utils.io import UnsafeCheckpointError, atomic_torch_save, atomic_write_json, checksum_path, safe_torch_load

logger = logging.getLogger(__name__)

__all__ = ["BestModelSaver", "EncoderExporter", "SafeCheckpointLoader", "TrainingCheckpointer", "resume_from_latest"]


class TrainingCheckpointer:
    """Crash-safe training checkpoints, including the trainer that owns this handler.

    MONAI's ``CheckpointSaver`` writes in place (``atomic=False``) and, declared in a config, cannot reference the
    trainer it is attached to (a circular reference). This handler adds the engine at ``attach`` time, writes every
    file atomically (temporary file, fsync, rename), keeps the newest ``n_saved`` epoch checkpoints and, at the end,
    writes ``final_filename`` with the network weights only.

    Args:
        save_dir: folder for ``checkpoint_epoch=N.pt`` files.
        save_dict: objects with ``state_dict`` (``network``, ``optimizer``, ``lr_scheduler``, ...).
        save_interval: epochs between checkpoints.
        n_saved: how many epoch checkpoints to keep.
        final_filename: file (in ``save_dir``'s parent) for the final network weights; ``None`` to skip.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, object],
        save_interval: int = 1,
        n_saved: int = 2,
        final_filename: str | None = "model.pt",
    ) -> None:
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.n_saved = n_saved
        self.final_filename = final_filename

    def attach(self, engine: Engine) -> None:
        """Save every ``save_interval`` epochs and once at the end."""
        self.save_dict.setdefault("trainer", engine)
        for stale in self.save_dir.glob(".*.tmp"):  # a write cut short by a crash; the last good file is intact
            stale.unlink(missing_ok=True)
        if getattr(engine, "scaler", None) is not None:  # AMP grad scaler state, for an exact resume
            self.save_dict.setdefault("scaler", engine.scaler)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save_epoch)
        if self.final_filename:
            engine.add_event_handler(Events.COMPLETED, self.save_final)

    def _state(self) -> dict:
        return {name: obj.state_dict() for name, obj in self.save_dict.items() if obj is not None}

    def save_epoch(self, engine: Engine) -> Path:
        """Write ``checkpoint_epoch=N.pt`` and drop the oldest beyond ``n_saved``."""
        path = atomic_torch_save(self._state(), self.save_dir / f"checkpoint_epoch={engine.state.epoch}.pt")
        for old in self.checkpoints(self.save_dir)[: -self.n_saved]:
            old.unlink(missing_ok=True)
            checksum_path(old).unlink(missing_ok=True)
        return path

    def save_final(self, engine: Engine) -> Path:
        """Write the network weights alone."""
        network = self.save_dict["network"]
        path = atomic_torch_save(network.state_dict(), self.save_dir.parent / self.final_filename)
        logger.info("Final weights written to %s", path)
        return path

    @staticmethod
    def checkpoints(save_dir: str | os.PathLike) -> list[Path]:
        """Epoch checkpoints in ``save_dir`` (``checkpoint_epoch=<N>.pt`` exactly), oldest first.

        Other files matching the glob (``checkpoint_epoch=6 (copy).pt``, a backup someone made) are not this
        handler's: they are skipped with a warning, never resumed from or deleted.
        """
        found = []
        for path in Path(save_dir).glob("checkpoint_epoch=*.pt"):
            match = _CHECKPOINT_NAME.fullmatch(path.name)
            if match is None:
                logger.warning("Ignoring %s: not a checkpoint this bundle wrote (checkpoint_epoch=<N>.pt)", path)
                continue
            found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found)]


_CHECKPOINT_NAME = re.compile(r"checkpoint_epoch=(\d+)\.pt")


def resume_from_latest(ckpt_dir: str | os.PathLike, objects: Mapping[str, object], enabled: bool = True) -> Path | None:
    """Load the newest ``checkpoint_epoch=N.pt`` of ``ckpt_dir`` into ``objects`` (network, optimizer, scheduler,
    trainer; the trainer's grad scaler too when saved) so that ``trainer.run()`` continues after epoch N.

    A newest checkpoint that cannot be read (cut short, damaged) is reported and the previous one is used; a
    checkpoint holding more than tensors is refused outright (it is never unpickled). Loading uses
    ``weights_only=True``. Returns the checkpoint used, or ``None`` (nothing to resume, or disabled).

    Raises:
        InputError: no readable checkpoint is left, or one is unsafe; the message names the file.
    """
    if not enabled:
        return None
    checkpoints = TrainingCheckpointer.checkpoints(ckpt_dir)
    if not checkpoints:
        logger.info("No checkpoint in %s: starting from scratch", ckpt_dir)
        return None
    state, path, damaged = None, None, []
    for candidate in reversed(checkpoints):
        try:
            state, path = safe_torch_load(candidate), candidate
            break
        except UnsafeCheckpointError:
            raise
        except InputError as err:  # cut short by a crash mid-copy, or damaged: the previous one is complete
            damaged.append(str(err))
            logger.warning("Cannot resume from %s; trying the previous checkpoint", err)
            print(f"warning: {err}; trying the previous checkpoint", flush=True)
    if state is None:
        raise InputError(f"no readable checkpoint to resume from ({len(damaged)} damaged: {damaged[0]})", ckpt_dir)
    if not isinstance(state, Mapping):
        raise InputError(f"not a training checkpoint (holds a {type(state).__name__})", path)
    objects = dict(objects)
    trainer = objects.get("trainer")
    if "scaler" in state and getattr(trainer, "scaler", None) is not None:
        objects.setdefault("scaler", trainer.scaler)
    configured_epochs = getattr(getattr(trainer, "state", None), "max_epochs", None)
    for name, obj in objects.items():
        if name not in state:
            raise InputError(
                f"no '{name}' entry (it holds {sorted(state)}): a checkpoint of another bundle or version; resume "
                "from this bundle's own checkpoints, or --resume false to start over",
                path,
            )
        try:
            obj.load_state_dict(state[name])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:  # shapes/keys of another network or depth
            first = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(":. ")
            raise InputError(
                f"its '{name}' does not fit this run ({first}): written with another depth, size or bundle; "
                "--resume false to start over, or another --bundle_root",
                path,
            ) from err
    if configured_epochs is not None:  # the checkpoint carries the old run's max_epochs: keep this run's
        reached = int(trainer.state.epoch)
        if reached > configured_epochs:
            raise InputError(
                f"the checkpoint is at epoch {reached}, beyond this run's {configured_epochs} epochs: raise --epochs "
                f"above {reached} to continue it, or --resume false to start over",
                path,
            )
        trainer.state.max_epochs = configured_epochs
    logger.info("Resumed from %s (epoch %s)", path, getattr(getattr(trainer, "state", None), "epoch", "?"))
    print(f"Resuming from {path}", flush=True)
    return path


class BestModelSaver:
    """Save ``network``'s weights to ``filepath`` whenever the evaluator's key metric improves.

    Attach it to a MONAI evaluator that has a ``key_val_metric``; MONAI updates ``state.best_metric`` and
    ``state.best_metric_epoch`` at epoch end before the handlers run, so a new best is seen here the same epoch.

    Args:
        network: the model whose ``state_dict`` is written.
        filepath: the model file (``models/model.pt``).
        record: what inference must know to rebuild and use the model (image size, depth, label names, ...),
            written with each new best as JSON beside the weights (``models/model.json``), with the epoch and score;
            the bundles' ``inference.yaml`` read it back (:func:`mflag_monai.bundle.trained_settings`).
    """

    def __init__(
        self, network: nn.Module, filepath: str | os.PathLike, record: Mapping[str, Any] | None = None
    ) -> None:
        self.network = network
        self.filepath = Path(filepath)
        self.record = dict(record or {})
        self.engine: Engine | None = None
        self._best: dict | None = None

    def attach(self, engine: Engine) -> None:
        """Check for a new best at every evaluation; restore a resumed best score when the evaluator starts."""
        self.engine = engine
        engine.add_event_handler(Events.STARTED, self._restore)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._save_if_best)

    def _restore(self, engine: Engine) -> None:
        # a fresh evaluator (after --resume) starts from -1: give it the saved best
        if self._best is not None and self._best["best_metric_epoch"] > getattr(engine.state, "best_metric_epoch", -1):
            engine.state.best_metric = self._best["best_metric"]
            engine.state.best_metric_epoch = self._best["best_metric_epoch"]

    def _save_if_best(self, engine: Engine) -> None:
        known = self._best["best_metric_epoch"] if self._best is not None else None  # a best already saved
        if engine.state.best_metric_epoch == engine.state.epoch and engine.state.best_metric_epoch != known:
            atomic_torch_save(self.network.state_dict(), self.filepath)
            if self.record:
                best = {"epoch": engine.state.epoch, "best_metric": float(engine.state.best_metric)}
                atomic_write_json({**_plain(self.record), **best}, self.filepath.with_suffix(".json"))
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


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and tensors/NumPy scalars as numbers, as JSON holds them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class EncoderExporter:
    """Save the image encoder's state dict (torchvision layout, no prefix) when training completes.

    This is the file the downstream bundles load. A JSON sidecar records how it was made.

    Args:
        encoder: the image encoder module (``@network.image_encoder``).
        filepath: where to write the ``.pt`` file.
        info: extra facts for the sidecar (depth, image size, language model, ...).
        save_every_epoch: also refresh the file after every epoch (so an interrupted run leaves a usable encoder).
    """

    def __init__(
        self,
        encoder: nn.Module,
        filepath: str | os.PathLike,
        info: Mapping | None = None,
        save_every_epoch: bool = True,
    ) -> None:
        self.encoder = encoder
        self.filepath = Path(filepath)
        self.info = dict(info or {})
        self.save_every_epoch = save_every_epoch
        self._saved_at = -1

    def attach(self, engine: Engine) -> None:
        """Export on completion (and after every epoch if asked)."""
        engine.add_event_handler(Events.COMPLETED, self)
        if self.save_every_epoch:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Write the encoder weights and the sidecar (once per iteration count)."""
        if engine.state.iteration == self._saved_at:
            return
        self._saved_at = engine.state.iteration
        state = {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}
        atomic_torch_save(state, self.filepath)
        info = {**self.info, "epoch": engine.state.epoch, "iteration": engine.state.iteration}
        info["feature_dim"] = int(getattr(self.encoder, "feature_dim", 0))
        # the depth once, under the name the configs use (image_depth), from the encoder itself
        info["image_depth"] = int(getattr(self.encoder, "depth", info.get("image_depth", 0)))
        atomic_write_json(info, self.filepath.with_suffix(".json"))
        if engine.state.epoch == engine.state.max_epochs:
            logger.info("Encoder weights written to %s", self.filepath)


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
