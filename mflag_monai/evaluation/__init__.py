"""Evaluation of a pre-trained M-FLAG model outside training: zero-shot classification and retrieval, image–report
similarity of an inference run, and the latent geometry of a trained model."""

from .geometry import compare_spectra, evaluate_geometry
from .similarity import read_reports, score_reports
from .zero_shot import (
    default_prompts,
    embed_images,
    embed_texts,
    run_retrieval,
    run_zero_shot,
    zero_shot_probabilities,
)

__all__ = [
    "compare_spectra",
    "default_prompts",
    "embed_images",
    "embed_texts",
    "evaluate_geometry",
    "read_reports",
    "run_retrieval",
    "run_zero_shot",
    "score_reports",
    "zero_shot_probabilities",
]
