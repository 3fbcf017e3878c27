"""mflag-monai: M-FLAG chest X-ray vision-language pre-training on MONAI.

Sub-packages: ``networks`` (encoders, projectors, the M-FLAG model), ``losses``, ``transforms`` (DICOM/PNG loading,
augmentations, report text), ``data`` (demo data, dataset preparation, datalists), ``engines`` (trainers and
evaluators), ``handlers`` (ignite handlers: checkpoints, reports, tracking, diagnostics), ``metrics``, ``evaluation``
(zero-shot, retrieval, image–report similarity, latent geometry of a trained model).
"""

from . import bundle, data, engines, evaluation, handlers, losses, metrics, networks, transforms, utils

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "bundle",
    "data",
    "engines",
    "evaluation",
    "handlers",
    "losses",
    "metrics",
    "networks",
    "transforms",
    "utils",
]
