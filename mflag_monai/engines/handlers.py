"""Ignite handlers that MONAI lacks: a tqdm progress bar with the losses, a per-epoch history file, and the
export of the trained encoder for the downstream bundles."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from torch import nn

from ..utils.dicom import DICOM_UIDS, dicom_identifiers, source_of
from ..utils.errors import InputError
from ..utils.io import UnsafeCheckpointError, atomic_torch_save, atomic_write_bytes, atomic_write_json, safe_torch_load
from .pretrain import loss_terms

logger = logging.getLogger(__name__)

__all__ = [
    "ProgressBarHandler",
    "HistoryWriter",
    "EncoderExporter",
    "TrainingCheckpointer",
    "MetricsJSONWriter",
    "SegmentationOverlayWriter",
    "ClassificationReportWriter",
    "DetectionReportWriter",
    "PredictionCSVWriter",
    "resume_from_latest",
]


class ProgressBarHandler:
    """Attach ignite's tqdm ``ProgressBar`` the MONAI way (``handler.attach(engine)``), showing the loss terms."""

    def __init__(self, output_transform: Callable = loss_terms, desc: str = "Epoch", persist: bool = True) -> None:
        self.output_transform = output_transform
        self.desc = desc
        self.persist = persist

    def attach(self, engine: Engine) -> None:
        """Show a bar per epoch with the running loss terms."""
        from ignite.handlers import ProgressBar

        ProgressBar(persist=self.persist, desc=self.desc).attach(engine, output_transform=self.output_transform)


class HistoryWriter:
    """Append the epoch-level metrics (``engine.state.metrics``) to a JSON list after every epoch.

    The file is rewritten atomically, so it is always complete; it is what users (and tests) read to see that the
    loss went down.
    """

    def __init__(self, filepath: str | os.PathLike) -> None:
        self.filepath = Path(filepath)

    def attach(self, engine: Engine) -> None:
        """Write after each epoch."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Append this epoch's metrics."""
        history = json.loads(self.filepath.read_text()) if self.filepath.is_file() else []
        history = [h for h in history if h.get("epoch", 0) < engine.state.epoch]  # a resumed run rewrites later epochs
        entry = {"epoch": engine.state.epoch, "iteration": engine.state.iteration}
        entry.update({k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float, torch.Tensor))})
        history.append(entry)
        atomic_write_json(history, self.filepath)


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
        self, encoder: nn.Module, filepath: str | os.PathLike, info: Mapping | None = None, save_every_epoch: bool = True
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
        info["depth"] = int(getattr(self.encoder, "depth", 0))
        atomic_write_json(info, self.filepath.with_suffix(".json"))
        if engine.state.epoch == engine.state.max_epochs:
            logger.info("Encoder weights written to %s", self.filepath)


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
        return path

    def save_final(self, engine: Engine) -> Path:
        """Write the network weights alone."""
        network = self.save_dict["network"]
        path = atomic_torch_save(network.state_dict(), self.save_dir.parent / self.final_filename)
        logger.info("Final weights written to %s", path)
        return path

    @staticmethod
    def checkpoints(save_dir: str | os.PathLike) -> list[Path]:
        """Epoch checkpoints in ``save_dir``, oldest first."""
        found = Path(save_dir).glob("checkpoint_epoch=*.pt")
        return sorted(found, key=lambda p: int(p.stem.split("=")[-1]))


class MetricsJSONWriter:
    """Write an evaluator's final metrics (``engine.state.metrics``) and extra facts to a JSON file when it completes.

    MONAI's ``MetricsSaver`` writes CSV tables; the bundles' results are read by scripts, so JSON.
    """

    def __init__(self, filepath: str | os.PathLike, info: Mapping | None = None) -> None:
        self.filepath = Path(filepath)
        self.info = dict(info or {})

    def attach(self, engine: Engine) -> None:
        """Write on completion."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Write the metrics."""
        metrics = {k: float(v) if isinstance(v, (int, float, torch.Tensor)) and torch.as_tensor(v).numel() == 1 else v
                   for k, v in engine.state.metrics.items()}
        atomic_write_json({"metrics": metrics, **self.info}, self.filepath)
        logger.info("Metrics written to %s: %s", self.filepath, metrics)


class SegmentationOverlayWriter:
    """Collect the first ``max_items`` (image, label, prediction) of an evaluation and save one overlay sheet PNG."""

    def __init__(self, filepath: str | os.PathLike, max_items: int = 8, threshold: float = 0.5) -> None:
        self.filepath = Path(filepath)
        self.max_items = max_items
        self.threshold = threshold
        self.items: list[tuple] = []

    def attach(self, engine: Engine) -> None:
        """Collect after each iteration, write on completion."""
        engine.add_event_handler(Events.STARTED, lambda e: self.items.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        """Keep (image, label, prediction) triples until ``max_items``."""
        output = engine.state.output
        rows = output if isinstance(output, list) else [output]
        for row in rows:
            if len(self.items) >= self.max_items:
                return
            image = torch.as_tensor(row["image"]).detach().cpu()[0] * 0.5 + 0.5  # undo the [-1, 1] normalisation
            label = torch.as_tensor(row["label"]).detach().cpu()[0] > 0.5
            pred = torch.as_tensor(row["pred"]).detach().cpu()[0] > self.threshold
            self.items.append((image.numpy(), label.numpy(), pred.numpy()))

    def write(self, engine: Engine) -> None:
        """Save the sheet."""
        if not self.items:
            return
        from ..utils.overlay import save_overlay_sheet

        images, truths, preds = zip(*self.items)
        save_overlay_sheet(list(images), list(truths), list(preds), self.filepath)
        logger.info("Overlay sheet written to %s", self.filepath)


class ClassificationReportWriter:
    """Collect an evaluation's probabilities and labels; at the end write per-label AUROC, their mean (and accuracy
    for multi-class) to a JSON file, and a ROC-curve PNG.

    Expects decollated outputs with ``pred`` (probabilities ``[C]``) and ``label`` (``[C]`` binary/one-hot).
    Probabilities are kept at the network's precision (no cast to float32, which would create ties).

    Args:
        protocol: ``"standard"`` or ``"mgca"`` (:func:`~mflag_monai.metrics.classification_report`).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        names: list[str],
        problem: str = "multi-label",
        roc_path: str | os.PathLike | None = None,
        info: Mapping | None = None,
        protocol: str = "standard",
    ) -> None:
        from ..metrics.protocol import check_protocol

        self.filepath = Path(filepath)
        self.names = list(names)
        self.problem = problem
        self.protocol = check_protocol(protocol)
        self.roc_path = Path(roc_path) if roc_path else None
        self.info = dict(info or {})
        self.probs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def attach(self, engine: Engine) -> None:
        """Collect after each iteration, write on completion."""
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _reset(self, engine: Engine) -> None:
        self.probs, self.labels = [], []

    def collect(self, engine: Engine) -> None:
        """Keep this batch's probabilities and labels."""
        rows = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        for row in rows:
            pred = torch.as_tensor(row["pred"]).detach().cpu().reshape(-1)
            self.probs.append(pred if pred.dtype == torch.float64 else pred.to(torch.float64))  # exact for float32/16
            self.labels.append(torch.as_tensor(row["label"]).detach().float().cpu().reshape(-1))

    def write(self, engine: Engine) -> None:
        """Write the report (and the ROC plot)."""
        from ..metrics import classification_report, per_label_auroc
        from ..utils.plots import save_roc_curves

        probs, labels = torch.stack(self.probs), torch.stack(self.labels)
        report = classification_report(probs, labels, self.names, self.problem, self.protocol)
        atomic_write_json({**report, **self.info}, self.filepath)
        if self.roc_path is not None:
            # the curves are the ROC curves whatever the protocol; their legend gives the area under them
            aucs = list(report["auroc"].values()) if self.protocol == "standard" else per_label_auroc(probs, labels)
            save_roc_curves(probs.numpy(), labels.numpy(), self.names, aucs, self.roc_path)
        logger.info("Mean AUROC %.4f over %d images; report written to %s", report["mean_auroc"], len(probs), self.filepath)


class DetectionReportWriter:
    """Collect a detection evaluation's boxes; at the end write the mAP over the protocol's IoU thresholds and the AP
    at each threshold to a JSON file, and PNGs of the first ``max_overlays`` images with their true (green) and
    predicted (red, with scores) boxes.

    Expects a :class:`~mflag_monai.engines.DetectionEvaluator`'s per-image outputs (``pred_boxes``, ``pred_scores``,
    ``pred_labels``, ``boxes``, ``labels``, ``image``); the overlays show the network input the boxes refer to.

    Args:
        filepath: the JSON report (``{"metrics": {"val_map": mAP}, "mAP", "ap_per_iou", counts, **info}``).
        overlay_dir: folder of the overlay PNGs (``<image stem>_boxes.png``); ``None`` for none.
        max_overlays: how many images get an overlay.
        info: extra facts written into the report (dataset, split, checkpoint, ...).
        report_kwargs: passed to :func:`~mflag_monai.metrics.detection_report` (``iou_range``, ``max_detections``,
            ``positive_images_only``, ``protocol``).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        overlay_dir: str | os.PathLike | None = None,
        max_overlays: int = 8,
        info: Mapping | None = None,
        report_kwargs: Mapping | None = None,
    ) -> None:
        self.filepath = Path(filepath)
        self.overlay_dir = Path(overlay_dir) if overlay_dir is not None else None
        self.max_overlays = max_overlays
        self.info = dict(info or {})
        self.report_kwargs = dict(report_kwargs or {})
        self.preds: list[dict] = []
        self.targets: list[dict] = []
        self.overlays: list[Path] = []

    def attach(self, engine: Engine) -> None:
        """Collect after each iteration, write on completion."""
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _reset(self, engine: Engine) -> None:
        self.preds, self.targets, self.overlays = [], [], []

    def collect(self, engine: Engine) -> None:
        """Keep this batch's boxes; draw the overlays of the first images."""
        from ..metrics.detection import detection_output_transform
        from ..utils.overlay import save_box_overlay

        rows = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        preds, targets = detection_output_transform(rows)
        self.preds.extend(preds)
        self.targets.extend(targets)
        for row, pred, target in zip(rows, preds, targets):
            if self.overlay_dir is None or len(self.overlays) >= self.max_overlays:
                break
            image = row["image"]
            source = Path(str(getattr(image, "meta", {}).get("filename_or_obj", f"image_{len(self.overlays)}")))
            title = f"{source.name}: truth {len(target['boxes'])} (green), predicted {len(pred['boxes'])} (red)"
            path = self.overlay_dir / f"{source.stem}_boxes.png"
            self.overlays.append(save_box_overlay(image, target["boxes"], pred["boxes"], pred["scores"], path, title))

    def write(self, engine: Engine) -> None:
        """Write the report."""
        from ..metrics.detection import detection_report

        report = detection_report(self.preds, self.targets, **self.report_kwargs)
        content = {"metrics": {"val_map": report["mAP"]}, **report, **self.info}
        if self.overlay_dir is not None:
            content["overlays"] = [str(p) for p in self.overlays]
        atomic_write_json(content, self.filepath)
        logger.info("mAP %.4f over %d images; report written to %s", report["mAP"], report["images"], self.filepath)


class PredictionCSVWriter:
    """Write ``image,StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,<label 1>,<label 2>,...`` rows of per-label
    probabilities for every image of an inference run (the identifiers are empty for PNG/JPG inputs)."""

    def __init__(self, filepath: str | os.PathLike, names: list[str], image_key: str = "image") -> None:
        self.filepath = Path(filepath)
        self.names = list(names)
        self.image_key = image_key
        self.rows: list[list[object]] = []

    def attach(self, engine: Engine) -> None:
        """Collect after each iteration, write on completion."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        """Keep (file name, probabilities) for each image of the batch."""
        rows = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        for row in rows:
            image = row[self.image_key]
            uids = dicom_identifiers(image)
            probs = torch.as_tensor(row["pred"]).detach().float().cpu().reshape(-1).tolist()
            self.rows.append([source_of(image), *(uids[k] for k in DICOM_UIDS), *[f"{p:.6f}" for p in probs]])

    def write(self, engine: Engine) -> None:
        """Write the CSV atomically."""
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["image", *DICOM_UIDS, *self.names])
        writer.writerows(self.rows)
        atomic_write_bytes(self.filepath, buffer.getvalue().encode())
        logger.info("Predictions for %d images written to %s", len(self.rows), self.filepath)


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
            raise InputError(f"no '{name}' entry (it holds {sorted(state)}); cannot resume from it", path)
        obj.load_state_dict(state[name])
    if configured_epochs is not None:  # the checkpoint carries the old run's max_epochs: keep this run's
        trainer.state.max_epochs = configured_epochs
    logger.info("Resumed from %s (epoch %s)", path, getattr(getattr(trainer, "state", None), "epoch", "?"))
    print(f"Resuming from {path}", flush=True)
    return path
