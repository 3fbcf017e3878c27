"""Training engines and handlers."""

from .handlers import (
    EncoderExporter,
    HistoryWriter,
    MetricsJSONWriter,
    ProgressBarHandler,
    SegmentationOverlayWriter,
    TrainingCheckpointer,
)
from .pretrain import MFLAGTrainer, loss_terms, paper_restart_period, resolve_amp_dtype

__all__ = ["MFLAGTrainer", "paper_restart_period", "loss_terms", "resolve_amp_dtype", "ProgressBarHandler", "HistoryWriter", "EncoderExporter", "TrainingCheckpointer", "MetricsJSONWriter", "SegmentationOverlayWriter"]
