"""The M-FLAG model: outputs, parameter share, frozen language model through a training step."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import MFLAG, FrozenTextEncoder, ProjectionHead, build_image_encoder, build_mflag


def test_projection_head_layout() -> None:
    head = ProjectionHead(2048)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert head[0].in_features == 2048 and head[0].out_features == 2048 and head[3].out_features == 1024
    assert head[1].affine and not head[4].affine


def test_forward_returns_feature_and_projections(tiny_bert_dir) -> None:
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir, proj_hidden_dim=64, proj_out_dim=32)
    out = model(torch.randn(3, 3, 64, 64), texts=["no pneumothorax .", "cardiomegaly .", "lungs are clear ."])
    assert out.image_feature.shape == (3, 512)
    assert out.image_proj.shape == (3, 32) and out.text_proj.shape == (3, 32)
    feats = model.language_features(["no pneumothorax ."] * 3)
    out2 = model(torch.randn(3, 3, 64, 64), text_features=feats)
    assert out2.text_proj.shape == (3, 32)


def test_language_model_not_in_state_dict(tiny_bert_dir) -> None:
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir)
    keys = model.state_dict().keys()
    assert not any(k.startswith("text_encoder") for k in keys)
    assert {k.split(".")[0] for k in keys} == {"image_encoder", "image_projector", "text_projector"}


def test_bert_base_resnet50_trainable_share_and_frozen_lm_after_step() -> None:
    """ResNet-50 + both projectors trainable, BERT-base frozen: trainable share ~23%, <= 25%
    (docs/method.md#parameter-count)."""
    from mflag_monai.networks.text_encoder import load_text_model

    torch.manual_seed(0)
    _, tokenizer = load_text_model("minilm-demo")  # BERT uncased vocabulary, same as BERT-base
    bert = BertModel(BertConfig())  # BERT-base from its config: no download
    text = FrozenTextEncoder(model=bert, tokenizer=tokenizer)
    model = MFLAG(build_image_encoder(50), text)
    counts = model.parameter_counts()
    share = counts["trainable"] / counts["total"]
    assert 0.20 < share <= 0.25, counts
    assert counts["frozen"] > 100_000_000

    before = {k: v.clone() for k, v in bert.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    out = model(torch.randn(4, 3, 64, 64), texts=["no pneumothorax."] * 2 + ["moderate cardiomegaly."] * 2)
    MFLAGLoss()(out)["loss"].backward()
    optimizer.step()
    assert all(p.grad is None for p in bert.parameters())
    assert all(torch.equal(before[k], v) for k, v in bert.state_dict().items())
    assert not bert.training


def test_needs_texts_or_features(tiny_bert_dir) -> None:
    model = MFLAG(build_image_encoder(18), text_hidden_size=32)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3, 32, 32), texts=["a", "b"])
    with pytest.raises(ValueError):
        model(torch.randn(2, 3, 32, 32))


def test_encode_image_and_text_are_the_projections(tiny_bert_dir) -> None:
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir, proj_hidden_dim=64, proj_out_dim=32).eval()
    images, texts = torch.randn(2, 3, 64, 64), ["no pneumothorax .", "cardiomegaly ."]
    with torch.no_grad():
        out = model(images, texts=texts)
        torch.testing.assert_close(model.encode_image(images), out.image_proj)
        torch.testing.assert_close(model.encode_text(texts), out.text_proj)
        features = model.language_features(texts)
        torch.testing.assert_close(model.encode_text(text_features=features), out.text_proj)
        unit = model.encode_image(images, normalize=True)
        torch.testing.assert_close(unit.norm(dim=-1), torch.ones(2))
        torch.testing.assert_close(unit, torch.nn.functional.normalize(out.image_proj, dim=-1))
        assert model.encode_text(texts, normalize=True).norm(dim=-1).allclose(torch.ones(2))


def test_batch_text_inputs_without_a_cache_are_the_reports(tiny_bert_dir) -> None:
    from mflag_monai.networks import batch_text_inputs

    model = build_mflag(image_depth=18, text_model=tiny_bert_dir)
    texts, features = batch_text_inputs({"report": ("a .", "b .")}, model)
    assert texts == ["a .", "b ."] and features is None
