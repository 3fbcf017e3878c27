"""Result files of training and evaluation runs: the per-epoch history, an evaluator's metrics as JSON, and the
classification, detection and segmentation reports (with their plots and overlays)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from ..utils.io import atomic_write_json
from .base import ReportWriter, output_rows

logger = logging.getLogger(__name__)

__all__ = [
    "ClassificationReportWriter",
    "DetectionReportWriter",
    "HistoryWriter",
    "MetricsJSONWriter",
    "SegmentationOverlayWriter",
]


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
        entry.update(
            {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float, torch.Tensor))}
        )
        history.append(entry)
        atomic_write_json(history, self.filepath)


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
        metrics = {
            k: float(v) if isinstance(v, (int, float, torch.Tensor)) and torch.as_tensor(v).numel() == 1 else v
            for k, v in engine.state.metrics.items()
        }
        atomic_write_json({"metrics": metrics, **self.info}, self.filepath)
        logger.info("Metrics written to %s: %s", self.filepath, metrics)


class SegmentationOverlayWriter(ReportWriter):
    """Collect the first ``max_items`` (image, label, prediction) of an evaluation and save one overlay sheet PNG."""

    def __init__(self, filepath: str | os.PathLike, max_items: int = 8, threshold: float = 0.5) -> None:
        self.filepath = Path(filepath)
        self.max_items = max_items
        self.threshold = threshold
        self.items: list[tuple] = []

    def reset(self) -> None:
        """Start a run with no items."""
        self.items.clear()

    def collect(self, engine: Engine) -> None:
        """Keep (image, label, prediction) triples until ``max_items``."""
        for row in output_rows(engine):
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


class ClassificationReportWriter(ReportWriter):
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

    def reset(self) -> None:
        """Start a run with nothing collected."""
        self.probs, self.labels = [], []

    def collect(self, engine: Engine) -> None:
        """Keep this batch's probabilities and labels."""
        for row in output_rows(engine):
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
        logger.info(
            "Mean AUROC %.4f over %d images; report written to %s", report["mean_auroc"], len(probs), self.filepath
        )


class DetectionReportWriter(ReportWriter):
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

    def reset(self) -> None:
        """Start a run with nothing collected."""
        self.preds, self.targets, self.overlays = [], [], []

    def collect(self, engine: Engine) -> None:
        """Keep this batch's boxes; draw the overlays of the first images."""
        from ..metrics.detection import detection_output_transform
        from ..utils.overlay import save_box_overlay

        rows = output_rows(engine)
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
