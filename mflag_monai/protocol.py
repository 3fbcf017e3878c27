"""The paper's settings (``--protocol``), in one place: what ``scripts/benchmark_transfer.py --protocol`` and the
README's paper command pass to the bundles, and what docs/method.md lists in its ``--protocol`` table (a test checks
all three against these dicts).

Values follow the authors' pre-training code where it is unambiguous, and MGCA's downstream code (which the paper
follows) for the downstream bundles; docs/method.md, "Differences from the authors' code and the paper", says where
and why the defaults differ. Paths (ImageNet weights, CXR-BERT, data) are the user's and are not listed here.
"""

from __future__ import annotations

__all__ = ["DOWNSTREAM_PROTOCOL", "PRETRAIN_PROTOCOL", "protocol_options"]

#: Pre-training bundle settings of the paper (ResNet-50 from ImageNet weights and CXR-BERT are given as paths).
PRETRAIN_PROTOCOL: dict[str, object] = {
    "image_depth": 50,
    "image_size": 224,
    "resize": 256,
    "resize_mode": "bilinear",  # the authors' resize: bilinear, no anti-aliasing
    "crop_to_content": True,  # the authors' crop to the non-zero bounding box
    "batch_size": 512,
    "epochs": 50,  # the paper's count (the authors' loop runs 51 passes)
    "learning_rate": 2e-5,
    "amp": True,
    "objective": "mflag",
    "min_rotation_deg": 0,
    "max_rotation_deg": 90,
    "rotation_interpolation": "nearest",  # torchvision RandomRotation's default
    "perspective_interpolation": "bicubic",  # the authors' RandomPerspective(interpolation=3)
    "augment_on": "cpu",  # the authors' two interpolations need the per-sample chain
    "report_separator": "",  # impression += findings
    "bn_recalibration_samples": 0,  # the authors never re-estimate BatchNorm statistics
}

#: Downstream bundle settings of MGCA's protocol, per task.
DOWNSTREAM_PROTOCOL: dict[str, dict[str, object]] = {
    "classification": {
        "image_depth": 50,
        "image_size": 224,
        "batch_size": 48,
        "epochs": 50,
        "learning_rate": 5e-4,
        "patience": 10,
        "encoder_bn": "frozen",  # MGCA puts the classification encoder in eval mode
        "select_on": "val_loss",  # MGCA's checkpoint callback and early stopping monitor val_loss
    },
    "segmentation": {
        "image_depth": 50,
        "image_size": 224,
        "batch_size": 8,
        "epochs": 50,
        "learning_rate": 5e-4,
        "patience": 10,
        "encoder_bn": "batch_stats",  # MGCA only sets requires_grad=False
        "select_on": "val_loss",
    },
    "detection": {
        "image_depth": 50,
        "image_size": 224,
        "batch_size": 16,
        "epochs": 50,
        "learning_rate": 5e-4,
        "patience": 10,
        "fpn_channels": 256,
        "encoder_bn": "batch_stats",
        "select_on": "metric",  # MGCA's detector monitors the validation mAP
    },
}


def protocol_options(settings: dict[str, object]) -> list[str]:
    """``settings`` as bundle command-line options (``--epochs 50 --amp true --report_separator ''``)."""
    out = []
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out += [f"--{key}", text]
    return out
