"""Training engines and handlers."""

from .detection import DetectionEvaluator, DetectionTrainer, detection_loss_terms
from .handlers import (
    ClassificationReportWriter,
    DetectionReportWriter,
    PredictionCSVWriter,
    resume_from_latest,
    EncoderExporter,
    HistoryWriter,
    MetricsJSONWriter,
    ProgressBarHandler,
    SegmentationOverlayWriter,
    TrainingCheckpointer,
)
from .embeddings import EmbeddingWriter, pretrained_settings, read_reports, score_reports
from .zero_shot import default_prompts, load_pretrained_mflag, recall_at_k, run_retrieval, run_zero_shot
from .tracking import TrackingExtras, literal_params
from .robustness import BestModelSaver, NonFiniteLossError, SafeCheckpointLoader, SkippedImageCounter, StopOnNonFiniteLoss
from .pretrain import MFLAGTrainer, batchnorm_statistics_kept, gradient_cached_backward, loss_terms, paper_restart_period, resolve_amp_dtype
from .diagnostics import LatentGeometryHandler, compare_spectra, evaluate_geometry
from .batchnorm import BatchNormRecalibration, recalibrate_batchnorm

__all__ = ["BatchNormRecalibration", "recalibrate_batchnorm", "MFLAGTrainer", "batchnorm_statistics_kept", "gradient_cached_backward", "paper_restart_period", "loss_terms", "resolve_amp_dtype", "ProgressBarHandler", "HistoryWriter", "EncoderExporter", "TrainingCheckpointer", "MetricsJSONWriter", "SegmentationOverlayWriter", "ClassificationReportWriter", "PredictionCSVWriter", "resume_from_latest", "TrackingExtras", "literal_params", "BestModelSaver", "SkippedImageCounter", "StopOnNonFiniteLoss", "NonFiniteLossError", "SafeCheckpointLoader",
    "DetectionTrainer", "DetectionEvaluator", "detection_loss_terms", "DetectionReportWriter",
    "EmbeddingWriter", "pretrained_settings", "read_reports", "score_reports",
    "default_prompts", "load_pretrained_mflag", "recall_at_k", "run_retrieval", "run_zero_shot",
    "LatentGeometryHandler", "evaluate_geometry", "compare_spectra"]
