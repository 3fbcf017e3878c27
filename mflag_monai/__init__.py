"""mflag-monai: M-FLAG chest X-ray vision-language pre-training on MONAI.

Sub-packages: ``networks`` (encoders, projectors, the M-FLAG model), ``losses``, ``transforms`` (DICOM/PNG loading,
augmentations, report text), ``data`` (demo data, dataset preparation, datalists), ``engines`` (trainer, handlers).
"""

from . import bundle, data, engines, losses, networks, transforms, utils

__version__ = "0.1.0"
__all__ = ["bundle", "data", "engines", "losses", "networks", "transforms", "utils", "__version__"]
