"""RetinaNet on the pre-trained encoder (docs/method.md#detection: MONAI ``RetinaNet`` with a feature pyramid over the
frozen ``layer2/3/4``; the paper used YOLOv3 on the same three stages).

The feature extractor is :class:`FrozenEncoderFPN`: our :class:`ResNetEncoder` (so the pre-trained weights load
strictly, as in the other downstream bundles) and MONAI's ``FeaturePyramidNetwork`` with a max-pooled extra level,
i.e. four levels at strides 8, 16, 32, 64. MONAI's own ``resnet_fpn_feature_extractor`` would wrap the backbone in an
``IntermediateLayerGetter`` (other parameter names) and freeze it by ``requires_grad`` only, so its BatchNorm
statistics would still drift in training mode; :class:`FrozenEncoderMixin` keeps them.

**Network and detector.** :func:`build_retinanet` makes the trainable network (:class:`CXRRetinaNet`, the bundle's
``network_def``: what is saved, loaded and exported); its ``forward`` returns one dense tensor (class logits and box
regression of every anchor), so MONAI's ``verify_net_in_out`` and TorchScript export work on it. :func:`build_detector`
wraps it in MONAI's ``RetinaNetDetector`` (anchors, matching, losses, box decoding, NMS), which reads the per-level
maps through :meth:`CXRRetinaNet.head_maps`.

**Box coordinates.** MONAI's detection code (anchors, matcher, box selector) puts a box's first coordinate along the
image array's first spatial axis (``"ij"`` indexing), which for our ``[C, H, W]`` radiographs is the row (y) axis;
the datasets, the metric, the overlays and the output files all use the image convention ``[x1, y1, x2, y2]`` with
x along the columns. :class:`CXRRetinaNetDetector` swaps x and y on the way in (training targets) and on the way
out (detections), so the rest of the package never sees MONAI's order. Transposing the images instead would show
the pre-trained encoder sideways radiographs.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.networks.retinanet_network import RetinaNet
from monai.apps.detection.utils.anchor_utils import AnchorGenerator
from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from torch import nn

from .image_encoder import build_image_encoder
from .pretrained import check_pretrained_encoder
from .utils import FrozenEncoderMixin, check_encoder_bn, freeze_module

logger = logging.getLogger(__name__)

__all__ = [
    "ANCHOR_REFERENCE_SIZE",
    "DEFAULT_ANCHOR_SIZES",
    "DEFAULT_ANCHOR_RATIOS",
    "CXRRetinaNet",
    "CXRRetinaNetDetector",
    "FrozenEncoderFPN",
    "build_detector",
    "build_retinanet",
    "scaled_anchor_sizes",
    "swap_box_xy",
]

#: The input size the anchor sizes below are stated for (the protocol's 224 px).
ANCHOR_REFERENCE_SIZE: int = 224
#: Anchor side lengths in pixels at 224 px, per pyramid level (strides 8, 16, 32, 64): three octave scales each,
#: from 16 px (small foreign objects) to ~200 px (a lobar opacity fills most of a 224-px lung).
DEFAULT_ANCHOR_SIZES: tuple[tuple[int, ...], ...] = ((16, 20, 25), (32, 40, 50), (64, 80, 101), (128, 161, 203))
#: Anchor height/width ratios at every level (symmetric, so the x/y swap above does not change them).
DEFAULT_ANCHOR_RATIOS: tuple[float, ...] = (0.5, 1.0, 2.0)


def swap_box_xy(boxes: torch.Tensor) -> torch.Tensor:
    """``[x1, y1, x2, y2]`` ↔ ``[y1, x1, y2, x2]`` for ``[N, 4]`` boxes (its own inverse)."""
    return boxes[..., [1, 0, 3, 2]]


def scaled_anchor_sizes(
    anchor_sizes: Sequence[Sequence[float]], image_size: int, reference_size: int = ANCHOR_REFERENCE_SIZE
) -> tuple[tuple[float, ...], ...]:
    """Anchor sizes stated for ``reference_size`` inputs, scaled to ``image_size`` inputs (objects shrink with it)."""
    scale = float(image_size) / float(reference_size)
    return tuple(tuple(float(s) * scale for s in level) for level in anchor_sizes)


class FrozenEncoderFPN(FrozenEncoderMixin, nn.Module):
    """ResNet encoder + feature pyramid over ``returned_layers`` (+ a max-pooled level), as RetinaNet consumes.

    Args:
        depth: ResNet depth (18, 34, 50).
        pretrained_encoder: encoder weights (``models/encoder.pt`` of the pre-training bundle) or ``None``.
        freeze_encoder: freeze the encoder (the protocol): no gradients, BatchNorm statistics kept.
        returned_layers: encoder stages feeding the pyramid (``(2, 3, 4)``: strides 8, 16, 32).
        out_channels: channels of every pyramid level (and of RetinaNet's heads).
        in_channels: image channels (3: grey repeated, for ImageNet-layout weights).
    """

    def __init__(
        self,
        depth: int = 50,
        pretrained_encoder: str | os.PathLike | None = None,
        freeze_encoder: bool = True,
        returned_layers: Sequence[int] = (2, 3, 4),
        out_channels: int = 256,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if not returned_layers or min(returned_layers) < 1 or max(returned_layers) > 4:
            raise ValueError(f"returned_layers must be encoder stages in 1..4, got {returned_layers}")
        path = check_pretrained_encoder(pretrained_encoder)
        self.encoder = build_image_encoder(depth, in_channels, pretrained_weights=path)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze_module(self.encoder)
        self.returned_layers = tuple(int(i) for i in returned_layers)
        # stage i has feature_dim / 2^(4-i) channels (ResNet-50: 256, 512, 1024, 2048; ResNet-18/34: 64 ... 512)
        in_channels_list = [self.encoder.feature_dim // 2 ** (4 - i) for i in self.returned_layers]
        self.fpn = FeaturePyramidNetwork(
            spatial_dims=2,
            in_channels_list=in_channels_list,
            out_channels=out_channels,
            extra_blocks=LastLevelMaxPool(2),
        )
        self.out_channels = out_channels  # RetinaNet reads this
        self.stride = 2 ** (max(self.returned_layers) + 2)  # of the extra max-pooled level: 64 for layer4

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pyramid levels, finest first."""
        stages = self.encoder.forward_features(x)
        selected: dict[str, torch.Tensor] = OrderedDict()
        for k, layer in enumerate(self.returned_layers):  # a plain loop: TorchScript compiles it
            selected[str(k)] = stages[layer - 1]
        return self.fpn(selected)


class CXRRetinaNet(RetinaNet):
    """MONAI's 2D ``RetinaNet`` whose ``forward`` returns one tensor; the detector uses :meth:`head_maps`.

    ``forward(images)`` gives ``[B, num_classes + 4, N]``: for each of the ``N`` anchors (pyramid levels finest first,
    then rows, columns and anchor shapes: the order of MONAI's anchor generator), the class logits followed by the
    box regression (MONAI's ``BoxCoder`` deltas). A single tensor is what MONAI's bundle tools (``verify_net_in_out``,
    ``ckpt_export``) and TorchScript handle; boxes come from :class:`CXRRetinaNetDetector`.
    """

    def head_maps(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Per-level classification and box-regression maps, as ``RetinaNetDetector`` consumes them."""
        feature_maps = list(self.feature_extractor(images).values())
        return {
            self.cls_key: self.classification_head(feature_maps),
            self.box_reg_key: self.regression_head(feature_maps),
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Dense output ``[B, num_classes + 4, N]`` (see the class docstring)."""
        maps = self.head_maps(images)
        columns = []
        for cls_map, box_map in zip(maps[self.cls_key], maps[self.box_reg_key]):
            b, _, h, w = cls_map.shape
            # [B, A*C, H, W] -> [B, H, W, A, C] -> [B, H*W*A, C], as RetinaNetDetector reshapes them
            cls = cls_map.view(b, self.num_anchors, self.num_classes, h, w).permute(0, 3, 4, 1, 2)
            box = box_map.view(b, self.num_anchors, 4, h, w).permute(0, 3, 4, 1, 2)
            cls, box = cls.reshape(b, -1, self.num_classes), box.reshape(b, -1, 4)
            columns.append(torch.cat([cls, box], dim=2))
        return torch.cat(columns, dim=1).transpose(1, 2)


class _HeadMaps(nn.Module):
    """The module ``RetinaNetDetector`` calls: a :class:`CXRRetinaNet`'s per-level maps, with the attributes the
    detector reads from its network."""

    def __init__(self, retinanet: CXRRetinaNet) -> None:
        super().__init__()
        self.retinanet = retinanet
        for name in ("spatial_dims", "num_classes", "size_divisible", "cls_key", "box_reg_key", "num_anchors"):
            setattr(self, name, getattr(retinanet, name))

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """The wrapped network's :meth:`CXRRetinaNet.head_maps`."""
        return self.retinanet.head_maps(images)


class CXRRetinaNetDetector(RetinaNetDetector):
    """MONAI's ``RetinaNetDetector`` taking and returning boxes in the image convention ``[x1, y1, x2, y2]``
    (x along the columns of a ``[C, H, W]`` image); see the module docstring for why."""

    def forward(  # type: ignore[override]
        self,
        input_images: list[torch.Tensor] | torch.Tensor,
        targets: list[dict[str, torch.Tensor]] | None = None,
        use_inferer: bool = False,
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Losses (training mode, with ``targets``) or one ``{boxes, labels, labels_scores}`` dict per image."""
        if targets is not None:
            key = self.target_box_key
            targets = [{**t, key: swap_box_xy(torch.as_tensor(t[key]).reshape(-1, 4))} for t in targets]
        result = super().forward(input_images, targets, use_inferer)
        if self.training:
            return result
        key = self.target_box_key
        return [{**d, key: swap_box_xy(d[key])} for d in result]  # type: ignore[union-attr]


def build_retinanet(
    depth: int = 50,
    num_classes: int = 1,
    pretrained_encoder: str | os.PathLike | None = None,
    freeze_encoder: bool = True,
    anchor_sizes: Sequence[Sequence[float]] = DEFAULT_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ANCHOR_RATIOS,
    returned_layers: Sequence[int] = (2, 3, 4),
    fpn_channels: int = 256,
    encoder_bn: str = "frozen",
) -> CXRRetinaNet:
    """The trainable 2D RetinaNet on a (pre-trained, frozen) ResNet encoder: the bundle's ``network_def``.

    Args:
        depth: ResNet depth of the encoder (must match the encoder file).
        num_classes: object classes, background excluded (1 for RSNA opacities and Object-CXR foreign objects).
        pretrained_encoder: encoder weights or ``None`` (random encoder, on purpose).
        freeze_encoder: the protocol freezes it; ``False`` fine-tunes it too.
        anchor_sizes: anchor sides per pyramid level (only their number per level matters here: it sizes the heads).
        aspect_ratios: anchor height/width ratios, the same at every level.
        returned_layers: encoder stages feeding the pyramid.
        fpn_channels: channels of the pyramid and of the two heads (RetinaNet's 256; fewer run faster on a CPU).
        encoder_bn: what a frozen encoder's BatchNorm does in training (:data:`~mflag_monai.networks.utils.ENCODER_BN_MODES`).
    """
    if len(anchor_sizes) != len(returned_layers) + 1:
        raise ValueError(
            f"anchor_sizes has {len(anchor_sizes)} levels; the pyramid has {len(returned_layers) + 1} "
            f"(returned_layers {tuple(returned_layers)} + one max-pooled level)"
        )
    feature_extractor = FrozenEncoderFPN(depth, pretrained_encoder, freeze_encoder, returned_layers, fpn_channels)
    feature_extractor.encoder_bn = check_encoder_bn(encoder_bn)
    return CXRRetinaNet(
        spatial_dims=2,
        num_classes=num_classes,
        num_anchors=len(anchor_sizes[0]) * len(aspect_ratios),
        feature_extractor=feature_extractor,
        # the detector pads inputs (at the end) to a multiple of the coarsest stride, so every level's grid is exact
        size_divisible=feature_extractor.stride,
    )


def build_detector(
    network: CXRRetinaNet,
    image_size: int = ANCHOR_REFERENCE_SIZE,
    anchor_sizes: Sequence[Sequence[float]] = DEFAULT_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ANCHOR_RATIOS,
    anchor_reference_size: int = ANCHOR_REFERENCE_SIZE,
    score_thresh: float = 0.5,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    topk_candidates_per_level: int = 1000,
    atss_candidates: int = 4,
    sampled_anchors_per_image: int = 64,
    positive_fraction: float = 0.3,
) -> CXRRetinaNetDetector:
    """MONAI's ``RetinaNetDetector`` around ``network``, ready to train (losses) and to predict (boxes).

    Args:
        network: from :func:`build_retinanet` (the detector shares its weights; save and load ``network``).
        image_size: side of the (square) network input; anchors scale by ``image_size / anchor_reference_size``.
        anchor_sizes: anchor sides in pixels at ``anchor_reference_size``, one tuple per pyramid level.
        aspect_ratios: anchor height/width ratios, the same at every level.
        anchor_reference_size: the input size ``anchor_sizes`` are stated for (224).
        score_thresh: test-time confidence threshold (the protocol's 0.5).
        nms_thresh: IoU threshold of the non-maximum suppression (the protocol's 0.5).
        detections_per_img: at most this many boxes per image after NMS.
        topk_candidates_per_level: candidates per level before NMS.
        atss_candidates: anchors per level and object the ATSS matcher considers (MONAI's detection default: 4).
        sampled_anchors_per_image: anchors per image in the classification loss (hard negative mining).
        positive_fraction: share of positive anchors among them.

    Training uses MONAI's defaults for its detection tutorials: ATSS matching (adaptive IoU threshold, suits both
    small foreign objects and large opacities), BCE on hard-negative-sampled anchors, smooth-L1 box regression.
    """
    sizes = scaled_anchor_sizes(anchor_sizes, image_size, anchor_reference_size)
    anchor_generator = AnchorGenerator(sizes=sizes, aspect_ratios=tuple(tuple(aspect_ratios) for _ in sizes))
    detector = CXRRetinaNetDetector(network=_HeadMaps(network), anchor_generator=anchor_generator)
    detector.set_atss_matcher(num_candidates=atss_candidates, center_in_gt=False)
    detector.set_hard_negative_sampler(
        batch_size_per_image=sampled_anchors_per_image, positive_fraction=positive_fraction, pool_size=20, min_neg=16
    )
    detector.set_box_selector_parameters(
        score_thresh=score_thresh,
        topk_candidates_per_level=topk_candidates_per_level,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
    )
    return detector
