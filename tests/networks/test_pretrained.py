"""mflag_monai.networks.pretrained: the pre-training bundle's ``models/`` read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mflag_monai.networks import build_mflag, load_pretrained_mflag, pretrained_settings


def test_the_pretrained_model_is_rebuilt_from_its_weights_and_sidecar(tiny_bert_dir: Path, tmp_path: Path) -> None:
    assert pretrained_settings(tmp_path) == {}  # not trained yet: the config's defaults apply
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_pretrained_mflag(tmp_path)
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir, proj_hidden_dim=32, proj_out_dim=16)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    info = {"image_depth": 18, "text_model": str(tiny_bert_dir), "proj_hidden_dim": 32, "proj_out_dim": 16}
    (tmp_path / "encoder.json").write_text(json.dumps(info))
    loaded, settings = load_pretrained_mflag(tmp_path)
    assert settings == info == pretrained_settings(tmp_path) and not loaded.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)
