"""Networks: the image encoder, the frozen text encoder, projection heads, the M-FLAG model and the downstream
networks on its pre-trained encoder (``pretrained``: reading back what pre-training wrote)."""

from .classification import CXRClassifier, build_classifier
from .detection import CXRRetinaNet, CXRRetinaNetDetector, FrozenEncoderFPN, build_detector, build_retinanet
from .embedder import MFLAGImageEmbedder, build_image_embedder
from .factory import build_mflag
from .image_encoder import (
    RESNET_LAYOUTS,
    ResNetEncoder,
    build_image_encoder,
    load_encoder_state_dict,
    load_weights_file,
)
from .mflag import MFLAG, MFLAGOutput, TextInputs, batch_text_inputs
from .pretrained import check_pretrained_encoder, load_pretrained_mflag, pretrained_settings
from .projection import ProjectionHead
from .segmentation import FrozenEncoderUNet, build_segmentation_unet
from .text_encoder import TEXT_MODEL_ALIASES, FrozenTextEncoder, load_text_model, resolve_text_model
from .utils import FrozenEncoderMixin, freeze_module, unwrap_model

__all__ = [
    "MFLAG",
    "RESNET_LAYOUTS",
    "TEXT_MODEL_ALIASES",
    "CXRClassifier",
    "CXRRetinaNet",
    "CXRRetinaNetDetector",
    "FrozenEncoderFPN",
    "FrozenEncoderMixin",
    "FrozenEncoderUNet",
    "FrozenTextEncoder",
    "MFLAGImageEmbedder",
    "MFLAGOutput",
    "ProjectionHead",
    "ResNetEncoder",
    "TextInputs",
    "batch_text_inputs",
    "build_classifier",
    "build_detector",
    "build_image_embedder",
    "build_image_encoder",
    "build_mflag",
    "build_retinanet",
    "build_segmentation_unet",
    "check_pretrained_encoder",
    "freeze_module",
    "load_encoder_state_dict",
    "load_pretrained_mflag",
    "load_text_model",
    "load_weights_file",
    "pretrained_settings",
    "resolve_text_model",
    "unwrap_model",
]
