"""MONAI transforms for chest radiographs and their reports."""

from .augment import (
    AUGMENT_ON,
    RandPerspectived,
    cxr_eval_transforms,
    cxr_preprocessing,
    cxr_pretrain_augmentation,
    cxr_pretrain_transforms,
)
from .boxes import BOX_CONVENTION, ResizeBoxesd, RestoreBoxesd, SaveBoxesd
from .device_augment import CXRBatchAugmentation
from .downstream import (
    cxr_classification_transforms,
    cxr_detection_transforms,
    cxr_image_transforms,
    cxr_segmentation_transforms,
)
from .io import CXRImageError, LoadCXRImage, LoadCXRImaged, read_cxr
from .text import AssembleReportd, assemble_report, parse_report_sections
from .writers import RestoreSized, SaveMaskd

__all__ = [
    "CXRImageError",
    "LoadCXRImage",
    "LoadCXRImaged",
    "read_cxr",
    "AUGMENT_ON",
    "CXRBatchAugmentation",
    "RandPerspectived",
    "cxr_preprocessing",
    "cxr_pretrain_augmentation",
    "cxr_pretrain_transforms",
    "cxr_eval_transforms",
    "cxr_image_transforms",
    "cxr_segmentation_transforms",
    "cxr_classification_transforms",
    "cxr_detection_transforms",
    "BOX_CONVENTION",
    "ResizeBoxesd",
    "RestoreBoxesd",
    "SaveBoxesd",
    "RestoreSized",
    "SaveMaskd",
    "AssembleReportd",
    "assemble_report",
    "parse_report_sections",
]
