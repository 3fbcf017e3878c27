"""Shared fixtures: a tiny BERT built from a config (no download) and small synthetic images."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from helpers.orthanc import OrthancServer

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one of the suite's worker processes (pyproject: -n 2, one per core): one compute thread each, inherited by the
    # bundles it starts, instead of every process spreading over both cores and the two workers contending
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WORDS = (
    "no pneumothorax pleural effusion heart size is normal cardiomegaly moderate mild severe large small left right "
    "lower upper lobe consolidation focal opacity lungs are clear the and of with in seen there stable unchanged "
    "acute cardiopulmonary process findings impression , . : -"
).split()


def make_tiny_bert(directory: Path, hidden: int = 32, layers: int = 2) -> Path:
    """Write a randomly initialised tiny BERT with a word-level vocabulary to ``directory``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT model folder (hidden size 32), made once per session."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``demo_data(num_studies, image_size, seed=42)``: the demo collection of that size, made once per session and
    shared by every test that asks for it. Tests only read it: what they write goes to their own folders."""
    from mflag_monai.data.demo import generate_demo_data

    made: dict[tuple[int, int, int], Path] = {}

    def make(num_studies: int, image_size: int, seed: int = 42) -> Path:
        key = (num_studies, image_size, seed)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"demo_{num_studies}x{image_size}_s{seed}")
            made[key] = generate_demo_data(
                folder / "demo", num_studies=num_studies, image_size=image_size, seed=seed, progress=False
            )
        return made[key]

    return make


@pytest.fixture(scope="session")
def small_demo(demo_data: Callable[..., Path]) -> Path:
    """The demo data at its smallest (10 MIMIC studies, 64 px; 4 SIIM DICOM with masks, CheXpert JPG), made once."""
    return demo_data(10, 64)


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory, small_demo: Path) -> Path:
    """A ``bundles/`` folder with tiny trained segmentation and classification models (see ``helpers/bundles.py``)."""
    from helpers.bundles import make_tiny_bundles

    return make_tiny_bundles(tmp_path_factory.mktemp("tiny_bundles"), small_demo)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A private Orthanc (``.url``, ``.dicomweb``), started once; skips when Orthanc or its plugin is missing.

    Shared by every test: each stores its own study (new UIDs), so none sees another's instances. Orthanc starts in
    a fraction of a second but takes about 2 s to stop.
    """
    from helpers.orthanc import require_orthanc, start_orthanc

    require_orthanc()
    with start_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    """In a worker process, torch too computes on one thread (it may be imported before OMP_NUM_THREADS is read)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
