"""ResNet image encoders in the torchvision-compatible layout.

MONAI's ``ResNet`` with ``conv1_t_stride=2`` and ``bias_downsample=False`` has exactly the parameter names and shapes of
torchvision's ResNet, so ImageNet weights and the M-FLAG authors' released encoder load strictly into it
(docs/method.md#monai-bundle-conventions). We keep MONAI's class (rather than torchvision's) so the encoder is the same
object the downstream MONAI networks (``FlexibleUNet``, RetinaNet feature extractors) are built from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from torch import nn

from ..utils.io import safe_torch_load

logger = logging.getLogger(__name__)

__all__ = [
    "RESNET_LAYOUTS",
    "ResNetEncoder",
    "build_image_encoder",
    "load_encoder_state_dict",
    "strip_state_dict_prefix",
    "load_weights_file",
]

# depth -> (block, layers): the torchvision definitions of ResNet-18/34/50.
RESNET_LAYOUTS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (ResNetBlock, [2, 2, 2, 2]),
    34: (ResNetBlock, [3, 4, 6, 3]),
    50: (ResNetBottleneck, [3, 4, 6, 3]),
}

# Prefixes that wrap an encoder's keys in checkpoints found in the wild (DDP, Lightning, the authors' code, ours).
KNOWN_PREFIXES = ("module.", "model.", "encoder.", "img_encoder.", "image_encoder.", "backbone.", "network.")


class ResNetEncoder(ResNet):
    """A 2D MONAI ResNet without its classifier, returning the pooled ``layer4`` feature.

    The output for an input ``[B, C, H, W]`` is ``[B, feature_dim]`` (2048 for ResNet-50, 512 for ResNet-18/34), the
    global-average-pooled post-ReLU ``layer4`` map that M-FLAG's orthogonality loss acts on
    (docs/method.md#image-encoder). ``fc`` is kept as ``None`` so that torchvision state dicts (which carry ``fc.*``)
    load once ``fc`` keys are dropped.
    """

    def __init__(self, depth: int = 50, in_channels: int = 3) -> None:
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"Unsupported ResNet depth {depth}; choose one of {sorted(RESNET_LAYOUTS)}.")
        block, layers = RESNET_LAYOUTS[depth]
        super().__init__(
            block=block,
            layers=layers,
            block_inplanes=[64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=2,
            bias_downsample=False,
            shortcut_type="B",
            feed_forward=False,  # no fc: the encoder ends at the pooled feature
        )
        self.depth = depth
        self.in_channels = in_channels
        self.feature_dim = 512 * (4 if block is ResNetBottleneck else 1)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the four stage outputs ``[layer1, layer2, layer3, layer4]`` (for dense downstream heads)."""
        # stages called one by one (not looped over a tuple) so that TorchScript can compile the encoder
        x1 = self.layer1(self.maxpool(self.act(self.bn1(self.conv1(x)))))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        return [x1, x2, x3, self.layer4(x3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled ``layer4`` feature ``[B, feature_dim]``."""
        return torch.flatten(self.avgpool(self.forward_features(x)[-1]), 1)


def strip_state_dict_prefix(
    state_dict: Mapping[str, torch.Tensor], reference_keys: set[str]
) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.``, ``encoder.``, ...) so keys match ``reference_keys``.

    Prefixes are stripped repeatedly (``module.encoder.conv1.weight`` -> ``conv1.weight``). Keys of other
    sub-modules that share the checkpoint (projection heads, text model) are dropped when a known encoder
    prefix is present, so a whole M-FLAG checkpoint can be passed in.
    """
    out = dict(state_dict)
    for _ in range(4):
        if reference_keys & set(out):
            break
        for prefix in KNOWN_PREFIXES:
            hits = {k[len(prefix) :]: v for k, v in out.items() if k.startswith(prefix)}
            if hits and reference_keys & set(hits):
                out = hits
                break
            if hits and len(hits) == len(out):
                out = hits  # a pure wrapper such as DDP's ``module.``; keep unwrapping
                break
        else:
            break
    return out


def load_encoder_state_dict(
    encoder: ResNetEncoder,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = True,
    source: str | Path | None = None,
) -> ResNetEncoder:
    """Load a torchvision-layout ResNet state dict into ``encoder``, with or without a wrapper prefix.

    ``fc.*`` entries (the ImageNet classifier) are ignored; everything else must match exactly when ``strict``
    (otherwise an :class:`~mflag_monai.utils.errors.InputError` naming ``source``, the weights file, is raised).
    """
    reference = set(encoder.state_dict())
    cleaned = strip_state_dict_prefix(state_dict, reference)
    cleaned = {k: v for k, v in cleaned.items() if not k.startswith("fc.")}
    if strict:
        missing = sorted(reference - set(cleaned))
        unexpected = sorted(set(cleaned) - reference)
        if missing or unexpected:
            from ..utils.errors import InputError

            raise InputError(
                "encoder weights do not match a torchvision-layout ResNet-"
                f"{getattr(encoder, 'depth', '?')}: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); check the depth setting and the weights file",
                source,
            )
    encoder.load_state_dict(cleaned, strict=strict)
    return encoder


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.pt``/``.pth`` (with ``weights_only=True``) or ``.safetensors``.

    Checkpoints that wrap the weights (``{"state_dict": ...}``, ``{"model": ...}``, ``{"network": ...}``) are unwrapped.
    A file holding other Python objects is refused (:class:`~mflag_monai.utils.io.UnsafeCheckpointError`): re-save
    its state dict with ``torch.save(model.state_dict())``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = safe_torch_load(path)  # never runs code from the file; one-line refusals naming it
    for key in ("state_dict", "model", "network", "encoder"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise TypeError(f"{path} does not hold a state dict (found {type(obj).__name__}).")
    return dict(obj)


def build_image_encoder(
    depth: int = 50, in_channels: int = 3, pretrained_weights: str | Path | None = None
) -> ResNetEncoder:
    """Create a ResNet-``depth`` encoder, optionally loading torchvision-layout weights from a file.

    Args:
        depth: 18, 34 or 50 (the paper uses 50).
        in_channels: 3 for ImageNet-compatible weights (grey images are repeated to 3 channels by the transforms).
        pretrained_weights: path of a ``.pt``/``.pth``/``.safetensors`` state dict (torchvision layout, any common
            prefix); ``None`` keeps the random initialisation.
    """
    encoder = ResNetEncoder(depth=depth, in_channels=in_channels)
    if pretrained_weights:
        load_encoder_state_dict(encoder, load_weights_file(pretrained_weights), strict=True, source=pretrained_weights)
        logger.info("Loaded encoder weights from %s", pretrained_weights)
    return encoder
