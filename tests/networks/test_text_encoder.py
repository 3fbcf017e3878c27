"""Frozen text encoder: offline loading, freezing, pooling, CXR-BERT-style checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mflag_monai.networks import FrozenTextEncoder, resolve_text_model
from mflag_monai.utils.errors import InputError


def test_demo_minilm_loads_offline() -> None:
    path = Path(resolve_text_model("minilm-demo"))
    assert (path / "config.json").is_file()
    enc = FrozenTextEncoder("minilm-demo", max_length=64)
    feats = enc(["No pneumothorax.", "Moderate cardiomegaly. Small left pleural effusion."])
    assert feats.shape == (2, 384) and not feats.requires_grad
    assert not enc.model.training and all(not p.requires_grad for p in enc.parameters())


def test_frozen_and_eval_even_after_train(tiny_bert_dir: Path) -> None:
    enc = FrozenTextEncoder(tiny_bert_dir)
    enc.train()
    assert not enc.model.training  # dropout stays off, as in the authors' code (from_pretrained's eval mode)
    a = enc(["no pneumothorax ."])
    b = enc(["no pneumothorax ."])
    assert torch.equal(a, b)


def test_cls_and_mean_pooling(tiny_bert_dir: Path) -> None:
    cls = FrozenTextEncoder(tiny_bert_dir, pooling="cls")
    mean = FrozenTextEncoder(tiny_bert_dir, pooling="mean", model=cls.model, tokenizer=cls.tokenizer)
    texts = ["heart size is normal .", "large left pleural effusion with focal consolidation ."]
    tokens = cls.tokenize(texts)
    with torch.no_grad():
        hidden = cls.model(**tokens).last_hidden_state
    assert torch.allclose(cls(texts), hidden[:, 0])
    m = tokens["attention_mask"].unsqueeze(-1).float()
    assert torch.allclose(mean(texts), (hidden * m).sum(1) / m.sum(1), atol=1e-6)
    with pytest.raises(ValueError):
        FrozenTextEncoder(tiny_bert_dir, pooling="max")


def test_truncation_to_max_length(tiny_bert_dir: Path) -> None:
    enc = FrozenTextEncoder(tiny_bert_dir, max_length=512)
    assert enc.max_length == 64  # capped at the model's position embeddings
    tokens = enc.tokenize(["the " * 300])
    assert tokens["input_ids"].shape[1] == 64


def test_cxr_bert_style_checkpoint_loads_without_remote_code(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """CXR-BERT ships model_type 'cxr-bert' with custom code and weights under 'bert.'; read it as plain BERT."""
    from safetensors.torch import load_file, save_file

    fake = tmp_path / "cxr-bert"
    shutil.copytree(tiny_bert_dir, fake)
    config = json.loads((fake / "config.json").read_text())
    config.update(
        model_type="cxr-bert",
        architectures=["CXRBertModel"],
        auto_map={"AutoConfig": "configuration_cxrbert.CXRBertConfig", "AutoModel": "modeling_cxrbert.CXRBertModel"},
        projection_size=128,
    )
    (fake / "config.json").write_text(json.dumps(config))
    weights = load_file(str(fake / "model.safetensors"))
    wrapped = {f"bert.{k}": v for k, v in weights.items()}
    wrapped["cls_projection_head.dense_to_hidden.weight"] = torch.zeros(4, 4)
    save_file(wrapped, str(fake / "model.safetensors"))

    enc = FrozenTextEncoder(fake)
    ref = FrozenTextEncoder(tiny_bert_dir)
    texts = ["no pneumothorax .", "moderate cardiomegaly ."]
    assert torch.allclose(enc(texts), ref(texts), atol=1e-6)


def test_missing_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no local folder or cached model .*--text_model DIR") as caught:
        FrozenTextEncoder(str(tmp_path / "nowhere"))
    assert str(caught.value).endswith("(--text_model)") and "\n" not in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is an empty folder"):
        FrozenTextEncoder(str(tmp_path / "empty"))
