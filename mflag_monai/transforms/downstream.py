"""Transform chains of the downstream bundles: radiograph in, network input out; masks and labels alongside."""

from __future__ import annotations

from monai.apps.detection.transforms.dictionary import ClipBoxToImaged, StandardizeEmptyBoxd
from monai.transforms import AsDiscreted, Compose, EnsureTyped, NormalizeIntensityd, RepeatChanneld, Resized

from .boxes import ResizeBoxesd
from .io import LoadCXRImaged

__all__ = [
    "cxr_segmentation_transforms",
    "cxr_image_transforms",
    "cxr_classification_transforms",
    "cxr_detection_transforms",
]


def cxr_image_transforms(image_size: int = 224, keys: str = "image", channels: int = 3) -> list:
    """Load a radiograph (DICOM/PNG/JPG, as displayed), resize to ``image_size²``, normalise to [−1, 1], 3 channels.

    The list form lets the inference chains of every bundle reuse it.
    """
    return [
        LoadCXRImaged(keys),
        Resized(keys, spatial_size=(image_size, image_size), mode="area"),
        NormalizeIntensityd(keys, subtrahend=0.5, divisor=0.5),
        RepeatChanneld(keys, repeats=channels),
        EnsureTyped(keys, dtype="float32"),
    ]


def cxr_segmentation_transforms(image_size: int = 224, image_key: str = "image", label_key: str = "label") -> Compose:
    """Image as :func:`cxr_image_transforms`; the mask PNG resized with nearest neighbours; any non-zero pixel is
    foreground, so 0/255 masks (ours) and 0/1 masks (MONAI Label, most viewers) read the same."""
    return Compose(
        [
            *cxr_image_transforms(image_size, image_key),
            LoadCXRImaged(label_key, check_intensities=False),  # an empty mask is not a bad image
            Resized(label_key, spatial_size=(image_size, image_size), mode="nearest"),
            AsDiscreted(label_key, threshold=1e-6),  # a 0/1 PNG loads as 0 and 1/255
        ]
    )


def cxr_classification_transforms(
    image_size: int = 224, problem: str = "multi-label", label_key: str = "label"
) -> Compose:
    """Image as :func:`cxr_image_transforms`; labels as float vectors (multi-label, BCE) or class indices (multi-class)."""
    label_dtype = "float32" if problem == "multi-label" else "int64"
    return Compose([*cxr_image_transforms(image_size), EnsureTyped(label_key, dtype=label_dtype, track_meta=False)])


def cxr_detection_transforms(
    image_size: int = 224, image_key: str = "image", box_key: str = "boxes", label_key: str = "labels"
) -> Compose:
    """Image as :func:`cxr_image_transforms`; boxes ``[x1, y1, x2, y2]`` (original pixels, x along the columns) scaled
    onto the resized image as ``[N, 4]`` float32 (``[0, 4]`` for a negative image), labels as int64 ``[N]``.

    Boxes are clipped to the image and boxes left without area are dropped with their labels (MONAI's
    ``ClipBoxToImaged``; the resized image is square, so its axis order does not matter there).
    """
    return Compose(
        [
            *cxr_image_transforms(image_size, image_key),
            EnsureTyped(box_key, dtype="float32", track_meta=False),
            EnsureTyped(label_key, dtype="int64", track_meta=False),
            StandardizeEmptyBoxd(box_keys=box_key, box_ref_image_keys=image_key),  # [] -> [0, 4]
            ResizeBoxesd(box_key, ref_key=image_key),
            ClipBoxToImaged(box_keys=box_key, label_keys=label_key, box_ref_image_keys=image_key, remove_empty=True),
        ]
    )
