"""The text feature cache: built once, keyed by model identity, never stale."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mflag_monai.data import TextFeatureCache, build_text_feature_cache, text_model_identity
from mflag_monai.networks import FrozenTextEncoder

DATALIST = {
    "training": [
        {"report": "no pneumothorax ."},
        {"report": "moderate cardiomegaly ."},
        {"report": "no pneumothorax ."},
    ],
    "validation": [{"report": "small left pleural effusion ."}],
}


class CountingEncoder:
    """Wraps a FrozenTextEncoder and counts how many texts it encodes."""

    def __init__(self, encoder: FrozenTextEncoder) -> None:
        self.encoder = encoder
        self.count = 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def __call__(self, texts):
        self.count += len(texts)
        return self.encoder(texts)


def test_build_once_then_reuse(tiny_bert_dir: Path, tmp_path: Path) -> None:
    enc = CountingEncoder(FrozenTextEncoder(tiny_bert_dir))
    cache = build_text_feature_cache(DATALIST, enc, tmp_path, batch_size=2)
    assert len(cache) == 3 and enc.count == 3  # distinct reports only
    again = build_text_feature_cache(DATALIST, enc, tmp_path)
    assert enc.count == 3 and torch.equal(again.features, cache.features)
    feats, missing = cache.lookup(["moderate cardiomegaly .", "never seen ."])
    assert missing.tolist() == [False, True]
    assert torch.allclose(feats[0], enc.encoder(["moderate cardiomegaly ."])[0])
    assert torch.equal(feats[1], torch.zeros_like(feats[1]))


def test_new_reports_are_added(tiny_bert_dir: Path, tmp_path: Path) -> None:
    enc = CountingEncoder(FrozenTextEncoder(tiny_bert_dir))
    build_text_feature_cache(DATALIST, enc, tmp_path)
    more = {"training": DATALIST["training"] + [{"report": "lungs are clear ."}]}
    cache = build_text_feature_cache(more, enc, tmp_path)
    assert enc.count == 4 and "lungs are clear ." in cache and len(cache) == 4


@pytest.mark.parametrize("change", ["max_length", "pooling", "model"])
def test_changing_the_model_or_settings_rebuilds(tiny_bert_dir: Path, tmp_path: Path, change: str) -> None:
    from conftest import make_tiny_bert

    base = FrozenTextEncoder(tiny_bert_dir)
    build_text_feature_cache(DATALIST, base, tmp_path)
    if change == "max_length":
        other = FrozenTextEncoder(tiny_bert_dir, max_length=8)
    elif change == "pooling":
        other = FrozenTextEncoder(tiny_bert_dir, pooling="mean")
    else:
        torch.manual_seed(123)  # same architecture and vocabulary, different weights
        other = FrozenTextEncoder(make_tiny_bert(tmp_path / "other_bert"))
    assert text_model_identity(other) != text_model_identity(base)
    counting = CountingEncoder(other)
    cache = build_text_feature_cache(DATALIST, counting, tmp_path)
    assert counting.count == 3  # nothing read from the other model's file
    assert len(list(tmp_path.glob("text_features-*.pt"))) == 2
    assert TextFeatureCache.load(tmp_path, text_model_identity(other)).identity == cache.identity


def test_disabled_returns_none(tiny_bert_dir: Path, tmp_path: Path) -> None:
    assert build_text_feature_cache(DATALIST, FrozenTextEncoder(tiny_bert_dir), tmp_path, enabled=False) is None
