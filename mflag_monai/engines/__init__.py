"""Training engines and evaluators: MONAI workflows with an M-FLAG pre-training or a detection iteration.

The handlers they run with are in :mod:`mflag_monai.handlers`.
"""

from .detection import DetectionEvaluator, DetectionTrainer, stack_images
from .pretrain import MFLAGTrainer, gradient_cached_backward, paper_restart_period, resolve_amp_dtype
from .utils import loss_terms

__all__ = [
    "DetectionEvaluator",
    "DetectionTrainer",
    "MFLAGTrainer",
    "gradient_cached_backward",
    "loss_terms",
    "paper_restart_period",
    "resolve_amp_dtype",
    "stack_images",
]
