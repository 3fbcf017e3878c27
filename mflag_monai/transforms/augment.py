"""The paper's pre-training augmentations as a MONAI transform chain (docs/method.md#augmentations).

In order: resize to ~256 px, random crop 224, random rotation in [0°, 90°], random perspective (distortion 0.5,
p 0.5), random autocontrast (p 0.5), normalise with mean 0.5 / std 0.5, grey repeated to 3 channels for the
ImageNet-layout encoder. MONAI provides all of them but the perspective warp, which is added here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import (
    CenterSpatialCropd,
    Compose,
    CropForegroundd,
    EnsureTyped,
    Identityd,
    Lambdad,
    MapTransform,
    NormalizeIntensityd,
    OneOf,
    RandomizableTransform,
    RandRotated,
    RandSpatialCropd,
    RepeatChanneld,
    Resized,
    ScaleIntensityd,
    ScaleIntensityRanged,
)

from ..utils.errors import InputError
from .io import LoadCXRImaged

__all__ = [
    "quantize_uint8",
    "AUGMENT_ON",
    "RandPerspectived",
    "cxr_preprocessing",
    "WARP_INTERPOLATIONS",
    "RESIZE_MODES",
    "ROTATION_INTERPOLATIONS",
    "cxr_pretrain_augmentation",
    "rotation_range",
    "cxr_pretrain_transforms",
    "cxr_eval_transforms",
]


#: How images are resized to ``resize``: ``area`` (default) or ``bilinear`` without anti-aliasing (the authors').
RESIZE_MODES = ("area", "bilinear")
#: Interpolation of the rotation: ``bilinear`` (default) or ``nearest`` (the authors' ``RandomRotation``).
ROTATION_INTERPOLATIONS = ("bilinear", "nearest")
#: Interpolation of the perspective warp: ``bilinear`` (default) or ``bicubic`` (the authors' ``RandomPerspective``).
WARP_INTERPOLATIONS = ("bilinear", "bicubic")


def rotation_range(min_rotation_deg: float, max_rotation_deg: float) -> tuple[float, float]:
    """MONAI's ``RandRotate`` ``range_x`` (radians) for a rotation uniform in ``[min, max]`` degrees, counter-clockwise
    as displayed for a positive angle, as torchvision's ``rotate`` (MONAI turns a positive angle clockwise on a
    ``[C, H, W]`` image whose rows run down, so the range is negated)."""
    if min_rotation_deg > max_rotation_deg:
        raise InputError(
            f"min_rotation_deg {min_rotation_deg} is above max_rotation_deg {max_rotation_deg}", "--min_rotation_deg"
        )
    return (-math.radians(max_rotation_deg), -math.radians(min_rotation_deg))


class RandPerspectived(RandomizableTransform, MapTransform):
    """Random perspective warp of 2D ``[C, H, W]`` images, the corners moved inwards by up to ``distortion``.

    MONAI has no perspective transform; this samples the four corner displacements as torchvision's
    ``RandomPerspective`` does (each corner moves by up to ``distortion × half the side``) and warps with
    torchvision's functional ``perspective``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        distortion: float = 0.5,
        prob: float = 0.5,
        fill: float = 0.0,
        interpolation: str = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if interpolation not in WARP_INTERPOLATIONS:
            raise InputError(
                f"expected one of {', '.join(WARP_INTERPOLATIONS)}, got {interpolation!r}",
                "--perspective_interpolation",
            )
        self.distortion = distortion
        self.fill = fill
        self.interpolation = interpolation
        self._endpoints: list[list[int]] | None = None

    def randomize(self, height: int, width: int) -> None:
        """Draw whether to warp and the displaced corners for an image of ``height × width``."""
        super().randomize(None)
        if not self._do_transform:
            return
        dx = int(self.distortion * (width // 2))
        dy = int(self.distortion * (height // 2))
        r = self.R.randint
        self._endpoints = [
            [r(0, dx + 1), r(0, dy + 1)],  # top-left
            [width - 1 - r(0, dx + 1), r(0, dy + 1)],  # top-right
            [width - 1 - r(0, dx + 1), height - 1 - r(0, dy + 1)],  # bottom-right
            [r(0, dx + 1), height - 1 - r(0, dy + 1)],  # bottom-left
        ]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """Warp every key with the same sampled corners."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2.functional import perspective

        d = dict(data)
        first = next(iter(self.key_iterator(d)), None)
        if first is None:
            return d
        height, width = d[first].shape[-2:]
        self.randomize(height, width)
        if not self._do_transform:
            return d
        start = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
        for key in self.key_iterator(d):
            img = d[key]
            mode = InterpolationMode(self.interpolation)
            warped = perspective(torch.as_tensor(img).float(), start, self._endpoints, mode, fill=[self.fill])
            d[key] = warped.to(img.dtype) if isinstance(img, torch.Tensor) else warped
        return d


def quantize_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] float → uint8 (rounded): the compact dtype a preprocessing cache stores
    (docs/method.md#scale-and-environment)."""
    return (image * 255.0).round().clamp(0, 255).to(torch.uint8)


def _nonzero(image: torch.Tensor) -> torch.Tensor:
    return image > 0


def cxr_preprocessing(
    keys: KeysCollection = "image",
    resize: int = 256,
    cache_dtype: torch.dtype = torch.uint8,
    keep_meta: bool = True,
    crop_to_content: bool = False,
    resize_mode: str = "area",
) -> Compose:
    """Deterministic part: load (DICOM/PNG/JPG, as displayed), resize to ``resize × resize``, store as ``cache_dtype``.

    ``crop_to_content`` first crops each image to the bounding box of its non-zero pixels (the authors'
    preprocessing: black borders of the export removed). ``resize_mode``: ``"area"`` (default: averages the pixels a
    downscaled pixel covers, so no aliasing) or ``"bilinear"`` (without anti-aliasing, as the authors' resize).

    This is what a preprocessing cache stores (uint8 by default: 4× smaller than float32, and within 1/510 of it);
    the random augmentation runs after it, every epoch. ``keep_meta=False`` returns plain tensors: MONAI's
    ``PersistentDataset`` stores no metadata (and cannot reload ``MetaTensor`` with ``weights_only``), so freshly
    computed and cached items must both come without it to collate together.
    """
    if resize_mode not in RESIZE_MODES:
        raise InputError(f"expected one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}", "--resize_mode")
    steps = [LoadCXRImaged(keys)]
    if crop_to_content:
        first = keys if isinstance(keys, str) else list(keys)[0]
        steps.append(CropForegroundd(keys, source_key=first, select_fn=_nonzero, margin=0, allow_smaller=True))
    steps.append(Resized(keys, spatial_size=(resize, resize), mode=resize_mode, anti_aliasing=False))
    steps.append(
        Lambdad(keys, func=quantize_uint8) if cache_dtype == torch.uint8 else EnsureTyped(keys, dtype=cache_dtype)
    )
    if not keep_meta:
        steps.append(EnsureTyped(keys, track_meta=False, dtype=None))
    return Compose(steps)


def _to_unit_float(keys: KeysCollection, cache_dtype: torch.dtype) -> list:
    """Back from the cached dtype to float32 in [0, 1]."""
    if cache_dtype == torch.uint8:
        return [ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, dtype=torch.float32)]
    return [EnsureTyped(keys, dtype=torch.float32)]


def cxr_pretrain_augmentation(
    keys: KeysCollection = "image",
    image_size: int = 224,
    max_rotation_deg: float = 90.0,
    perspective_distortion: float = 0.5,
    perspective_prob: float = 0.5,
    autocontrast_prob: float = 0.5,
    channels: int = 3,
    cache_dtype: torch.dtype = torch.uint8,
    min_rotation_deg: float = 0.0,
    rotation_interpolation: str = "bilinear",
    perspective_interpolation: str = "bilinear",
) -> Compose:
    """Random part, in the paper's order, ending with normalisation to [-1, 1] and ``channels`` channels.

    The rotation is uniform in ``[min_rotation_deg, max_rotation_deg]``, counter-clockwise for a positive angle as
    torchvision's (and so the authors') ``RandomRotation``; ``rotation_interpolation`` and
    ``perspective_interpolation`` choose the resampling (the authors: ``nearest`` and ``bicubic``).
    """
    if rotation_interpolation not in ROTATION_INTERPOLATIONS:
        raise InputError(
            f"expected one of {', '.join(ROTATION_INTERPOLATIONS)}, got {rotation_interpolation!r}",
            "--rotation_interpolation",
        )
    return Compose(
        [
            # the crop comes first so that a cached dataset stops here and stores the compact dtype
            RandSpatialCropd(keys, roi_size=(image_size, image_size), random_size=False),
            *_to_unit_float(keys, cache_dtype),
            RandRotated(
                keys,
                range_x=rotation_range(min_rotation_deg, max_rotation_deg),
                prob=1.0,
                keep_size=True,
                mode=rotation_interpolation,
                padding_mode="zeros",
            ),
            RandPerspectived(
                keys, distortion=perspective_distortion, prob=perspective_prob, interpolation=perspective_interpolation
            ),
            # autocontrast = stretch each image's min..max to 0..1, applied with probability p
            OneOf(
                [ScaleIntensityd(keys, minv=0.0, maxv=1.0), Identityd(keys)],
                weights=[autocontrast_prob, 1.0 - autocontrast_prob],
            ),
            NormalizeIntensityd(keys, subtrahend=0.5, divisor=0.5),
            RepeatChanneld(keys, repeats=channels),
        ]
    )


AUGMENT_ON = ("cpu", "device")


def cxr_pretrain_transforms(
    keys: KeysCollection = "image",
    resize: int = 256,
    image_size: int = 224,
    cache_dtype: torch.dtype = torch.uint8,
    augment_on: str = "cpu",
    max_rotation_deg: float = 90.0,
    min_rotation_deg: float = 0.0,
    rotation_interpolation: str = "bilinear",
    perspective_interpolation: str = "bilinear",
    crop_to_content: bool = False,
    resize_mode: str = "area",
    **augment_kwargs,
) -> Compose:
    """Full pre-training chain of the data loader: :func:`cxr_preprocessing` then the random part, flattened.

    Flat, so that MONAI's cached datasets store everything before the first random transform (the same cache for
    both modes). ``augment_on="cpu"``: all of :func:`cxr_pretrain_augmentation`, per sample. ``"device"``: only the
    random crop, leaving the cached dtype (uint8: a quarter of the bytes of float32 to collate and copy, one channel
    instead of three); :class:`~mflag_monai.transforms.CXRBatchAugmentation` does the rest on the training device,
    and takes the rotation range there (``max_rotation_deg`` and ``min_rotation_deg`` are then unused here).
    """
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    pre = cxr_preprocessing(
        keys, resize, cache_dtype, keep_meta=False, crop_to_content=crop_to_content, resize_mode=resize_mode
    )
    if augment_on == "device":
        for name, value in (("rotation", rotation_interpolation), ("perspective", perspective_interpolation)):
            if value != "bilinear":  # one bilinear warp on the device; the authors' mix needs the CPU chain
                raise InputError(
                    f"augment_on 'device' warps once, bilinear; {value!r} needs --augment_on cpu",
                    f"--{name}_interpolation",
                )
        if augment_kwargs:
            raise ValueError(
                f"augment_on='device' takes its settings in CXRBatchAugmentation, got {sorted(augment_kwargs)}"
            )
        # plain tensors: the batch travels to the device as one uint8 tensor, without MetaTensor bookkeeping
        rand = [
            RandSpatialCropd(keys, roi_size=(image_size, image_size), random_size=False),
            EnsureTyped(keys, track_meta=False, dtype=None),
        ]
        return Compose([*pre.transforms, *rand])
    aug = cxr_pretrain_augmentation(
        keys,
        image_size,
        cache_dtype=cache_dtype,
        max_rotation_deg=max_rotation_deg,
        min_rotation_deg=min_rotation_deg,
        rotation_interpolation=rotation_interpolation,
        perspective_interpolation=perspective_interpolation,
        **augment_kwargs,
    )
    return Compose([*pre.transforms, *aug.transforms])


def cxr_eval_transforms(
    keys: KeysCollection = "image",
    resize: int = 256,
    image_size: int = 224,
    channels: int = 3,
    crop_to_content: bool = False,
    resize_mode: str = "area",
) -> Compose:
    """Deterministic evaluation chain: load, resize to ``resize``, centre crop ``image_size``, normalise, repeat channels
    (``crop_to_content`` and ``resize_mode`` as :func:`cxr_preprocessing`)."""
    return Compose(
        [
            *cxr_preprocessing(keys, resize, crop_to_content=crop_to_content, resize_mode=resize_mode).transforms,
            *_to_unit_float(keys, torch.uint8),
            CenterSpatialCropd(keys, roi_size=(image_size, image_size)),
            NormalizeIntensityd(keys, subtrahend=0.5, divisor=0.5),
            RepeatChanneld(keys, repeats=channels),
        ]
    )
