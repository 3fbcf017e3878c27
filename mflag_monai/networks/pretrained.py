"""What the pre-training bundle leaves behind (``models/model.pt``, ``encoder.pt``, ``encoder.json``), read back:
the check of a downstream bundle's encoder path, the sidecar settings and the rebuilt M-FLAG model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .factory import build_mflag
from .image_encoder import load_weights_file
from .mflag import MFLAG

__all__ = ["check_pretrained_encoder", "load_pretrained_mflag", "pretrained_settings"]


def check_pretrained_encoder(path: str | os.PathLike | None) -> str | None:
    """Return ``path`` if it exists; ``None`` stays ``None`` (random init on purpose); otherwise say how to make it."""
    if path is None or str(path).lower() in ("", "none", "null"):
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"Pre-trained encoder not found: {path}. This bundle takes the image encoder of the M-FLAG pre-training "
            "bundle (metadata.json: pretrained_encoder). Run the pretrain bundle first:\n"
            "  python -m monai.bundle run training --config_file bundles/pretrain/configs/train.yaml\n"
            "and pass --pretrained_encoder <its models/encoder.pt> when it is not the sibling folder ../pretrain, "
            "or pass --pretrained_encoder null for a random encoder."
        )
    return str(path)


def pretrained_settings(models_dir: str | os.PathLike) -> dict:
    """What ``models/encoder.json`` (written by pre-training) records: depth, sizes, language model, widths.

    Empty when the bundle has not been trained (the config's defaults then apply, as for ``verify_net_in_out``).
    """
    sidecar = Path(models_dir) / "encoder.json"
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def load_pretrained_mflag(
    models_dir: str | os.PathLike, text_model: str | None = None, device: str | torch.device = "cpu"
) -> tuple[MFLAG, dict]:
    """Rebuild the pre-trained M-FLAG model from the pre-training bundle's ``models/`` (``model.pt`` + ``encoder.json``).

    Returns:
        the model in eval mode on ``device``, and the sidecar's settings.
    """
    models_dir = Path(models_dir)
    weights, sidecar = models_dir / "model.pt", models_dir / "encoder.json"
    for f in (weights, sidecar):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found: run the pre-training bundle first "
                "(python -m monai.bundle run training --config_file bundles/pretrain/configs/train.yaml)."
            )
    info = json.loads(sidecar.read_text())
    model = build_mflag(
        image_depth=info["image_depth"],
        text_model=text_model or info["text_model"],
        pooling=info.get("text_pooling", "cls"),
        proj_hidden_dim=info.get("proj_hidden_dim", 2048),
        proj_out_dim=info.get("proj_out_dim", 1024),
    )
    model.load_state_dict(load_weights_file(weights), strict=True)
    return model.to(device).eval(), info
