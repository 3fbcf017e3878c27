"""MONAI Label infer tasks for the 2D chest X-ray bundles of this repository.

Both read the bundle's ``configs/inference.yaml`` (``network_def``, ``preprocessing``, ``inferer``,
``postprocessing``) through MONAI Label's :class:`BundleInferTask`; the image arrives as a file path and the
bundle's own ``LoadCXRImaged`` reads it (DICOM as displayed, PNG/JPG).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.transforms import SaveImaged, SqueezeDimd, Transposed
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask

from mflag_monai.transforms import SaveMaskd
from mflag_monai.utils.formats import DICOM_SUFFIXES

from .. import apply_overrides, as_compose


class _BundleConfig:
    """Reads the bundle's inference config with the app's overrides, pre/postprocessing as ``Compose``."""

    overrides: dict[str, Any]

    def _load_bundle_config(self, path: str, config: str) -> Any:
        parser = apply_overrides(super()._load_bundle_config(path, config), self.overrides)  # type: ignore[misc]
        for key in ("preprocessing", "postprocessing"):
            as_compose(parser, key)
        return parser


class SegmentationInfer(_BundleConfig, BundleInferTask):
    """The segmentation bundle: a binary mask of exactly the input image's rows x columns.

    Args:
        path: the bundle folder (``configs/``, ``models/model.pt``).
        conf: the app's ``--conf`` pairs.
        overrides: bundle config values to replace (e.g. ``{"image_size": 224}``), as the model was trained.
        kwargs: passed to :class:`BundleInferTask`.
    """

    def __init__(
        self, path: str, conf: Mapping[str, str], overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.overrides = dict(overrides or {})  # read by _load_bundle_config during the base __init__
        kwargs.setdefault("type", InferType.SEGMENTATION)
        # SaveMaskd writes files next to the bundle for the CLI; MONAI Label writes the result itself
        kwargs.setdefault("post_filter", [SaveImaged, SaveMaskd])
        kwargs.setdefault("load_strict", True)  # a model trained with other settings must fail, not half-load
        super().__init__(path, dict(conf), **kwargs)

    def post_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        """The bundle's postprocessing (mask back at the input's size), MONAI Label's ``Restored``, then 2D fixes."""
        post = list(super().post_transforms(data))
        # Restored keeps the channel dimension of a 2D label: [1, H, W] would be written as a 3D image
        post.append(SqueezeDimd(keys=self.key_pred, dim=0))
        # MONAI Label's writer transposes before handing the array to ITK (its images load x-first); ours are
        # rows-first, so transpose here to write an H x W file
        post.append(Transposed(keys=self.key_pred, indices=(1, 0)))
        return post

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
        """Write the mask as uint8 (the PNG writer refuses float labels) in the input's format, except: DICOM inputs'
        masks as NIfTI with the radiograph's pixel spacing, JPG inputs' masks as PNG."""
        if dtype is None and not data.get("result_dtype"):
            dtype = "uint8"
        suffix = Path(str(data.get("image_path") or "")).suffix.lower()
        dicom = suffix in DICOM_SUFFIXES
        if extension is None and not data.get("result_extension"):
            if dicom:
                extension = ".nii.gz"  # a label written as DICOM would be a secondary-capture image, not a mask
            elif suffix in (".jpg", ".jpeg"):
                extension = ".png"  # JPEG's lossy compression would blur the label values
        result_file, result_json = super().writer(data, extension=extension, dtype=dtype)
        if dicom and isinstance(result_file, str) and result_file.endswith((".nii.gz", ".nii", ".nrrd")):
            _set_spacing(result_file, data[self.key_image].meta.get("pixel_spacing", [1.0, 1.0]))
        return result_file, result_json


def _set_spacing(path: str, pixel_spacing: Sequence[float]) -> None:
    """Give a written 2D mask the radiograph's ``[row, column]`` spacing in mm.

    MONAI Label writes 2D labels without their image's geometry (spacing 1), so in a viewer a mask would not cover
    a DICOM radiograph that has a PixelSpacing; ITK's order is x (columns) first.
    """
    import itk

    row, col = (float(s) for s in list(pixel_spacing)[:2])
    if (row, col) == (1.0, 1.0):
        return
    image = itk.imread(path)
    image.SetSpacing([col, row])
    itk.imwrite(image, path, True)


class ClassificationInfer(_BundleConfig, BundleInferTask):
    """The classification bundle: one probability per label, returned as ``{"prediction": [{label, score}]}``.

    MONAI Label's ``Restored`` would try to resize the score vector to the image (and crash), so it is left out.

    Args:
        path: the bundle folder (``configs/``, ``models/model.pt``).
        conf: the app's ``--conf`` pairs.
        overrides: bundle config values to replace (e.g. ``{"image_size": 224}``), as the model was trained.
        kwargs: passed to :class:`BundleInferTask`.
    """

    def __init__(
        self, path: str, conf: Mapping[str, str], overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.overrides = dict(overrides or {})
        kwargs.setdefault("type", InferType.CLASSIFICATION)
        kwargs.setdefault("add_post_restore", False)
        kwargs.setdefault("load_strict", True)
        super().__init__(path, dict(conf), **kwargs)
