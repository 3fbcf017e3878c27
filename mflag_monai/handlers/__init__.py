"""Ignite handlers of the bundles, attached the MONAI way (``handler.attach(engine)``), one module per concern.

- ``progress``: the tqdm progress bar with the loss terms; ``loss_terms``: their epoch means, whatever they are;
  ``throughput``: images/s and the data-wait share.
- ``checkpoint``: crash-safe training checkpoints and the resume, the best model of a validation, the encoder export,
  a checkpoint loader that refuses unsafe files.
- ``reports``: the per-epoch history and the evaluation reports (metrics JSON, classification, detection,
  segmentation overlays), on the shared collect/write shape of ``base``; ``predictions``: per-input inference
  outputs (probabilities CSV, embeddings).
- ``tracking``: what ``--tracking mlflow`` records beyond MONAI's defaults.
- ``geometry``: latent-geometry diagnostics during pre-training; ``batchnorm``: BatchNorm statistics re-estimated
  on upright images. What they compute lives in ``mflag_monai.evaluation.latents`` and ``mflag_monai.data.subset``.
- ``skipped_images`` and ``non_finite_loss``: the count of images that failed to load, and the stop at a NaN loss.
"""

from .base import ReportWriter, output_rows
from .batchnorm import BatchNormRecalibration, recalibrate_batchnorm
from .checkpoint import BestModelSaver, EncoderExporter, SafeCheckpointLoader, TrainingCheckpointer, resume_from_latest
from .geometry import LatentGeometryHandler
from .loss_terms import EpochTermMeans
from .non_finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from .predictions import EmbeddingWriter, PredictionCSVWriter
from .progress import ProgressBarHandler
from .reports import (
    ClassificationReportWriter,
    DetectionReportWriter,
    HistoryWriter,
    MetricsJSONWriter,
    SegmentationOverlayWriter,
)
from .skipped_images import SkippedImageCounter
from .throughput import ThroughputMeter
from .tracking import TrackingExtras, literal_params

__all__ = [
    "BatchNormRecalibration",
    "BestModelSaver",
    "ClassificationReportWriter",
    "DetectionReportWriter",
    "EmbeddingWriter",
    "EncoderExporter",
    "EpochTermMeans",
    "HistoryWriter",
    "LatentGeometryHandler",
    "MetricsJSONWriter",
    "NonFiniteLossError",
    "PredictionCSVWriter",
    "ProgressBarHandler",
    "ReportWriter",
    "SafeCheckpointLoader",
    "SegmentationOverlayWriter",
    "SkippedImageCounter",
    "StopOnNonFiniteLoss",
    "ThroughputMeter",
    "TrackingExtras",
    "TrainingCheckpointer",
    "literal_params",
    "output_rows",
    "recalibrate_batchnorm",
    "resume_from_latest",
]
