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

from .io import LoadCXRImaged

__all__ = [
    "quantize_uint8",
    "AUGMENT_ON",
    "RandPerspectived",
    "cxr_preprocessing",
    "cxr_pretrain_augmentation",
    "cxr_pretrain_transforms",
    "cxr_eval_transforms",
]


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
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.distortion = distortion
        self.fill = fill
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
            warped = perspective(torch.as_tensor(img).float(), start, self._endpoints, fill=[self.fill])
            d[key] = warped.to(img.dtype) if isinstance(img, torch.Tensor) else warped
        return d


def quantize_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] float → uint8 (rounded): the compact dtype a preprocessing cache stores
    (docs/method.md#scale-and-environment)."""
    return (image * 255.0).round().clamp(0, 255).to(torch.uint8)


def cxr_preprocessing(
    keys: KeysCollection = "image", resize: int = 256, cache_dtype: torch.dtype = torch.uint8, keep_meta: bool = True
) -> Compose:
    """Deterministic part: load (DICOM/PNG/JPG, as displayed), resize to ``resize × resize``, store as ``cache_dtype``.

    This is what a preprocessing cache stores (uint8 by default: 4× smaller than float32, and within 1/510 of it);
    the random augmentation runs after it, every epoch. ``keep_meta=False`` returns plain tensors: MONAI's
    ``PersistentDataset`` stores no metadata (and cannot reload ``MetaTensor`` with ``weights_only``), so freshly
    computed and cached items must both come without it to collate together.
    """
    steps = [LoadCXRImaged(keys), Resized(keys, spatial_size=(resize, resize), mode="area")]
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
    crop: int = 224,
    max_rotation_deg: float = 90.0,
    perspective_distortion: float = 0.5,
    perspective_prob: float = 0.5,
    autocontrast_prob: float = 0.5,
    channels: int = 3,
    cache_dtype: torch.dtype = torch.uint8,
) -> Compose:
    """Random part, in the paper's order, ending with normalisation to [-1, 1] and ``channels`` channels."""
    return Compose(
        [
            # the crop comes first so that a cached dataset stops here and stores the compact dtype
            RandSpatialCropd(keys, roi_size=(crop, crop), random_size=False),
            *_to_unit_float(keys, cache_dtype),
            RandRotated(
                keys, range_x=(0.0, math.radians(max_rotation_deg)), prob=1.0, keep_size=True, padding_mode="zeros"
            ),
            RandPerspectived(keys, distortion=perspective_distortion, prob=perspective_prob),
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
    crop: int = 224,
    cache_dtype: torch.dtype = torch.uint8,
    augment_on: str = "cpu",
    max_rotation_deg: float = 90.0,
    **augment_kwargs,
) -> Compose:
    """Full pre-training chain of the data loader: :func:`cxr_preprocessing` then the random part, flattened.

    Flat, so that MONAI's cached datasets store everything before the first random transform (the same cache for
    both modes). ``augment_on="cpu"``: all of :func:`cxr_pretrain_augmentation`, per sample. ``"device"``: only the
    random crop, leaving the cached dtype (uint8: a quarter of the bytes of float32 to collate and copy, one channel
    instead of three); :class:`~mflag_monai.transforms.CXRBatchAugmentation` does the rest on the training device,
    and takes the rotation range there (``max_rotation_deg`` is then unused here).
    """
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    pre = cxr_preprocessing(keys, resize, cache_dtype, keep_meta=False)
    if augment_on == "device":
        if augment_kwargs:
            raise ValueError(
                f"augment_on='device' takes its settings in CXRBatchAugmentation, got {sorted(augment_kwargs)}"
            )
        # plain tensors: the batch travels to the device as one uint8 tensor, without MetaTensor bookkeeping
        rand = [
            RandSpatialCropd(keys, roi_size=(crop, crop), random_size=False),
            EnsureTyped(keys, track_meta=False, dtype=None),
        ]
        return Compose([*pre.transforms, *rand])
    aug = cxr_pretrain_augmentation(
        keys, crop, cache_dtype=cache_dtype, max_rotation_deg=max_rotation_deg, **augment_kwargs
    )
    return Compose([*pre.transforms, *aug.transforms])


def cxr_eval_transforms(
    keys: KeysCollection = "image", resize: int = 256, crop: int = 224, channels: int = 3
) -> Compose:
    """Deterministic evaluation chain: load, resize to ``resize``, centre crop ``crop``, normalise, repeat channels."""
    return Compose(
        [
            *cxr_preprocessing(keys, resize).transforms,
            *_to_unit_float(keys, torch.uint8),
            CenterSpatialCropd(keys, roi_size=(crop, crop)),
            NormalizeIntensityd(keys, subtrahend=0.5, divisor=0.5),
            RepeatChanneld(keys, repeats=channels),
        ]
    )
