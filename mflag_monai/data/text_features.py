"""A disk cache of the frozen language model's report features.

The language model is frozen and deterministic in eval mode, so a report's feature is a pure function of (model weights,
tokenizer settings, pooling, text) (docs/method.md#cached-text-features). We compute it once per distinct report and
store it in a file whose name is a hash of everything but the text; inside, features are keyed by a hash of the text. A
different model, ``max_length`` or pooling therefore reads a different file and can never see stale features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from ..utils.dist import rank_zero_first
from ..utils.errors import InputError
from ..utils.io import UnsafeCheckpointError, atomic_torch_save, safe_torch_load

logger = logging.getLogger(__name__)

__all__ = ["text_key", "text_model_identity", "TextFeatureCache", "build_text_feature_cache"]


def text_key(text: str) -> str:
    """The cache key of one report text (SHA-1 of its UTF-8 bytes)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _weights_fingerprint(model: torch.nn.Module) -> str:
    """Hash of every parameter's bytes: identifies the weights whatever folder they were loaded from."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def text_model_identity(text_encoder) -> dict[str, object]:
    """What the cached features depend on: the weights, the tokenizer and its settings, the pooling."""
    tok = text_encoder.tokenizer
    return {
        "weights": _weights_fingerprint(text_encoder.model),
        "architecture": type(text_encoder.model).__name__,
        "hidden_size": int(text_encoder.hidden_size),
        "tokenizer": type(tok).__name__,
        "vocab_size": int(getattr(tok, "vocab_size", 0)),
        "do_lower_case": bool(getattr(tok, "do_lower_case", False)),
        "max_length": int(text_encoder.max_length),
        "pooling": text_encoder.pooling,
    }


class TextFeatureCache:
    """Cached language-model features of report texts, looked up by text.

    Args:
        features: ``[N, H]`` tensor.
        keys: the ``N`` text keys (:func:`text_key`), row order of ``features``.
        identity: :func:`text_model_identity` of the model that made them.
    """

    def __init__(self, features: torch.Tensor, keys: Sequence[str], identity: Mapping[str, object]) -> None:
        self.features = features
        self.keys = list(keys)
        self.identity = dict(identity)
        self._index = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._index

    def lookup(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, H]`` (float32) of ``texts`` and a bool mask of those not in the cache (rows left at 0)."""
        rows = [self._index.get(text_key(t), -1) for t in texts]
        found = torch.tensor([r >= 0 for r in rows])
        out = torch.zeros(len(texts), self.features.shape[1], dtype=torch.float32)
        if found.any():
            out[found] = self.features[torch.tensor([r for r in rows if r >= 0])].float()
        return out, ~found

    @staticmethod
    def filename(identity: Mapping[str, object]) -> str:
        """The cache file name for an identity."""
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"text_features-{digest}.pt"

    def save(self, cache_dir: str | os.PathLike) -> Path:
        """Write atomically to ``cache_dir/<identity hash>.pt``."""
        payload = {"identity": self.identity, "keys": self.keys, "features": self.features}
        return atomic_torch_save(payload, Path(cache_dir) / self.filename(self.identity))

    @classmethod
    def load(cls, cache_dir: str | os.PathLike, identity: Mapping[str, object]) -> TextFeatureCache | None:
        """The cache for ``identity`` in ``cache_dir``, or ``None`` when there is none."""
        path = Path(cache_dir) / cls.filename(identity)
        if not path.is_file():
            return None
        try:
            payload = safe_torch_load(path)
        except UnsafeCheckpointError:
            raise
        except InputError as err:  # cut short or damaged: computed again, and rewritten
            logger.warning("Ignoring the text feature cache: %s", err)
            return None
        # a hash collision or a hand-copied file
        if not isinstance(payload, Mapping) or payload.get("identity") != dict(identity):
            return None
        return cls(payload["features"], payload["keys"], payload["identity"])


def _reports(datalist: Mapping[str, Sequence[Mapping]] | Iterable[str], report_key: str) -> list[str]:
    if isinstance(datalist, Mapping):
        texts = [
            e[report_key] for split in datalist.values() if isinstance(split, list) for e in split if report_key in e
        ]
    else:
        texts = list(datalist)
    return list(dict.fromkeys(texts))  # distinct, order kept


def build_text_feature_cache(
    datalist: Mapping[str, Sequence[Mapping]] | Iterable[str],
    text_encoder,
    cache_dir: str | os.PathLike,
    batch_size: int = 64,
    dtype: torch.dtype = torch.float32,
    report_key: str = "report",
    enabled: bool = True,
) -> TextFeatureCache | None:
    """Load the cache for this model, or build it: every distinct report of ``datalist``, batched, with a progress bar.

    Reports missing from an existing cache (new data) are added. ``enabled=False`` returns ``None`` (the trainer then
    runs the language model every step, as the authors' code does).
    """
    if not enabled:
        return None
    with rank_zero_first():  # under torchrun, rank 0 builds the file and the other ranks then read it
        return _load_or_build(datalist, text_encoder, cache_dir, batch_size, dtype, report_key)


def _load_or_build(datalist, text_encoder, cache_dir, batch_size, dtype, report_key) -> TextFeatureCache:
    identity = text_model_identity(text_encoder)
    texts = _reports(datalist, report_key)
    cache = TextFeatureCache.load(cache_dir, identity)
    todo = texts if cache is None else [t for t in texts if t not in cache]
    if not todo and cache is not None:
        logger.info("Text feature cache up to date: %d reports (%s)", len(cache), cache_dir)
        return cache
    chunks = []
    for start in tqdm(range(0, len(todo), batch_size), desc="Text features", unit="batch"):
        chunks.append(text_encoder(todo[start : start + batch_size]).to("cpu", dtype))
    new = torch.cat(chunks)
    keys = [text_key(t) for t in todo]
    if cache is not None:
        new, keys = torch.cat([cache.features.to(dtype), new]), cache.keys + keys
    cache = TextFeatureCache(new, keys, identity)
    path = cache.save(cache_dir)
    logger.info("Text feature cache: %d reports encoded, %d in total, written to %s", len(todo), len(cache), path)
    return cache
