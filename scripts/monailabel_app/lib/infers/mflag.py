"""MONAI Label infer tasks for the 2D chest X-ray bundles of this repository.

Both read the bundle's ``configs/inference.yaml`` (``network_def``, ``preprocessing``, ``inferer``,
``postprocessing``) through MONAI Label's :class:`BundleInferTask`; the image arrives as a file path and the
bundle's own ``LoadCXRImaged`` reads it (DICOM as displayed, PNG/JPG).

From a DICOMweb datastore the path is the series converted to NIfTI (or the folder of its DICOM files). That NIfTI
has neither the VOI window nor always the spacing of the radiograph, so the tasks read the retrieved DICOM file
beside it instead (:class:`ReadDicomSourced`): the result is the one the DICOM file gives, and the segmentation mask
is written back in the NIfTI's geometry, which is what a viewer that loaded that image overlays it on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.transforms import SaveImaged, SqueezeDimd, Transposed
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.utils.others.generic import strtobool

from mflag_monai.transforms import SaveMaskd
from mflag_monai.utils.formats import DICOM_SUFFIXES

from .. import apply_overrides, as_compose
from ..datastore import dicom_source

#: Keys the infer request gets from :class:`ReadDicomSourced`: the DICOM file read, and the image the datastore
#: handed over when it is not that file (its geometry is the mask's).
SOURCE_KEY = "dicom_source"
REFERENCE_KEY = "reference_image"


class ReadDicomSourced:
    """Point ``key`` at the radiograph's DICOM file when the path is a DICOMweb datastore's image (its NIfTI
    conversion, or its series folder); any other path is left as it is.

    Args:
        key: the image key of the request (``image``).
    """

    def __init__(self, key: str = "image") -> None:
        self.key = key

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        """Replace ``data[key]`` by the DICOM file and record it (and a NIfTI it replaces) in the request."""
        path = data.get(self.key)
        if not isinstance(path, (str, Path)):
            return data
        source = dicom_source(path)
        if source is None:
            return data
        data = dict(data)
        if Path(path).is_file():
            data[REFERENCE_KEY] = str(path)
        data[SOURCE_KEY] = str(source)
        data[self.key] = str(source)
        return data


class _BundleConfig:
    """Reads the bundle's inference config with the app's overrides, pre/postprocessing as ``Compose``, and reads a
    DICOMweb image from its DICOM file."""

    overrides: dict[str, Any]
    key_image: str

    def _load_bundle_config(self, path: str, config: str) -> Any:
        parser = apply_overrides(super()._load_bundle_config(path, config), self.overrides)  # type: ignore[misc]
        for key in ("preprocessing", "postprocessing"):
            as_compose(parser, key)
        return parser

    def pre_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        """The bundle's preprocessing, after :class:`ReadDicomSourced`."""
        return [ReadDicomSourced(self.key_image), *super().pre_transforms(data)]  # type: ignore[misc]


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
        masks as NIfTI with the radiograph's pixel spacing, JPG inputs' masks as PNG; a DICOMweb image's mask as
        NIfTI in the geometry of the image the datastore handed over (a viewer overlays it on that image)."""
        if dtype is None and not data.get("result_dtype"):
            dtype = "uint8"
        suffix = Path(str(data.get(SOURCE_KEY) or data.get("image_path") or "")).suffix.lower()
        dicom = suffix in DICOM_SUFFIXES
        if extension is None and not data.get("result_extension"):
            if dicom:
                # a label written as DICOM would be a secondary-capture image, not a mask; and MONAI Label would
                # take a DICOMweb image's extension from its UID (".159112.nii.gz", or no writer for a folder)
                extension = ".nii.gz"
            elif suffix in (".jpg", ".jpeg"):
                extension = ".png"  # JPEG's lossy compression would blur the label values
        result_file, result_json = super().writer(data, extension=extension, dtype=dtype)
        if isinstance(result_file, str) and result_file.endswith((".nii.gz", ".nii", ".nrrd")):
            if data.get(REFERENCE_KEY):
                compress = strtobool(str(data.get("result_compress", False))) or result_file.endswith(".gz")
                _copy_geometry(result_file, data[REFERENCE_KEY], compress)
            elif dicom:
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


def _copy_geometry(path: str, reference: str, compress: bool) -> None:
    """Give a written 2D mask the size, origin, spacing and direction of the image it was computed for.

    MONAI Label writes 2D labels without geometry; the DICOMweb datastore's NIfTI of a radiograph is a 3D image of
    one slice (x along the columns, as the mask), so the mask becomes that slice in that geometry.
    """
    import SimpleITK as sitk

    mask = sitk.ReadImage(path)
    image = sitk.ReadImage(reference)
    if mask.GetDimension() == 2 and image.GetDimension() == 3:
        mask = sitk.JoinSeries(mask)
    if mask.GetSize() != image.GetSize():
        raise ValueError(f"the mask is {mask.GetSize()} (x, y), its image {reference} is {image.GetSize()}")
    mask.CopyInformation(image)
    sitk.WriteImage(mask, path, compress)


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
