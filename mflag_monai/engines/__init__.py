"""Training engines and handlers."""

from .handlers import (
    ClassificationReportWriter,
    PredictionCSVWriter,
    resume_from_latest,
    EncoderExporter,
    HistoryWriter,
    MetricsJSONWriter,
    ProgressBarHandler,
    SegmentationOverlayWriter,
    TrainingCheckpointer,
)
from .zero_shot import default_prompts, load_pretrained_mflag, recall_at_k, run_retrieval, run_zero_shot
from .pretrain import MFLAGTrainer, loss_terms, paper_restart_period, resolve_amp_dtype

__all__ = ["MFLAGTrainer", "paper_restart_period", "loss_terms", "resolve_amp_dtype", "ProgressBarHandler", "HistoryWriter", "EncoderExporter", "TrainingCheckpointer", "MetricsJSONWriter", "SegmentationOverlayWriter", "ClassificationReportWriter", "PredictionCSVWriter", "resume_from_latest",
    "default_prompts", "load_pretrained_mflag", "recall_at_k", "run_retrieval", "run_zero_shot"]
