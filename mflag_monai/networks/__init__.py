"""Networks: the image encoder, the frozen text encoder, projection heads and the M-FLAG model."""

from .classification import CXRClassifier, build_classifier
from .embedder import MFLAGImageEmbedder, build_image_embedder
from .detection import CXRRetinaNet, CXRRetinaNetDetector, FrozenEncoderFPN, build_detector, build_retinanet
from .factory import build_mflag
from .image_encoder import RESNET_LAYOUTS, ResNetEncoder, build_image_encoder, load_encoder_state_dict, load_weights_file
from .mflag import MFLAG, MFLAGOutput
from .projection import ProjectionHead
from .segmentation import FrozenEncoderUNet, build_segmentation_unet, check_pretrained_encoder, freeze_module
from .text_encoder import TEXT_MODEL_ALIASES, FrozenTextEncoder, load_text_model, resolve_text_model

__all__ = [
    "RESNET_LAYOUTS",
    "ResNetEncoder",
    "build_image_encoder",
    "load_encoder_state_dict",
    "load_weights_file",
    "FrozenTextEncoder",
    "load_text_model",
    "resolve_text_model",
    "TEXT_MODEL_ALIASES",
    "ProjectionHead",
    "MFLAG",
    "MFLAGOutput",
    "build_mflag",
    "MFLAGImageEmbedder",
    "build_image_embedder",
    "CXRClassifier",
    "build_classifier",
    "FrozenEncoderUNet",
    "build_segmentation_unet",
    "check_pretrained_encoder",
    "freeze_module",
    "FrozenEncoderFPN",
    "CXRRetinaNet",
    "CXRRetinaNetDetector",
    "build_retinanet",
    "build_detector",
]
