"""Training engines and handlers."""

from .handlers import EncoderExporter, HistoryWriter, ProgressBarHandler, TrainingCheckpointer
from .pretrain import MFLAGTrainer, loss_terms, paper_restart_period

__all__ = ["MFLAGTrainer", "paper_restart_period", "loss_terms", "ProgressBarHandler", "HistoryWriter", "EncoderExporter", "TrainingCheckpointer"]
