"""mflag_monai.protocol: the paper's settings are the same in docs/method.md's table, in
``scripts/benchmark_transfer.py --protocol`` and in the README's paper command, and the bundles resolve them to what
the table says (the options parsed as ``python -m monai.bundle`` parses them)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from fire.parser import DefaultParseValue
from monai.bundle import ConfigParser

from mflag_monai.bundle import flag
from mflag_monai.protocol import DOWNSTREAM_PROTOCOL, PRETRAIN_PROTOCOL

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import benchmark_transfer  # noqa: E402


def as_overrides(options: list[str]) -> dict[str, object]:
    """``--key value`` pairs as python-fire hands them to the bundle."""
    pairs = zip(options[::2], options[1::2])
    return {key.removeprefix("--"): DefaultParseValue(value) for key, value in pairs}


def resolved(task: str, overrides: dict[str, object], keys) -> dict[str, object]:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / task / "configs" / "train.yaml"))
    parser.update(overrides)
    out = {}
    for key in keys:
        value = parser.get_parsed_content(key)
        out[key] = flag(value, key) if isinstance(PROTOCOLS[task][key], bool) else value
    return out


PROTOCOLS = {"pretrain": PRETRAIN_PROTOCOL, **DOWNSTREAM_PROTOCOL}


def expected(task: str) -> dict[str, object]:
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in PROTOCOLS[task].items()}


def test_the_method_table_lists_exactly_the_protocol() -> None:
    text = (REPO / "docs" / "method.md").read_text()
    table = text.split("### `--protocol` settings", 1)[1]
    rows = re.findall(r"^\| (\w+) \| `(\w+)` \| (.+?) \|$", table, flags=re.M)
    found: dict[str, dict[str, object]] = {}
    for bundle, key, cell in rows:
        cell = cell.strip().strip("`")
        found.setdefault(bundle, {})[key] = "" if cell == '""' else flag(cell, key) if cell in ("true", "false") else (
            DefaultParseValue(cell))  # fmt: skip
    assert found == PROTOCOLS


def test_the_readme_paper_command_resolves_to_the_protocol() -> None:
    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "--pretrained_image_weights" in b)
    words = shlex.split(block.replace("\\\n", " "))
    options = words[words.index("--config_file") + 2 :]
    overrides = as_overrides(options)
    assert resolved("pretrain", overrides, PRETRAIN_PROTOCOL) == expected("pretrain")


def test_the_benchmark_protocol_design_resolves_to_the_protocol() -> None:
    design = benchmark_transfer.protocol_design("/models/resnet50.pth", "/models/cxr-bert")
    options = benchmark_transfer.cli_options(design.pretrain_settings("mflag"))
    assert resolved("pretrain", as_overrides(options), PRETRAIN_PROTOCOL) == expected("pretrain")
    for task in ("segmentation", "detection"):
        settings = design.downstream_settings(task, 0.1)
        assert resolved(task, settings, DOWNSTREAM_PROTOCOL[task]) == expected(task)


def test_the_protocol_reaches_the_pretraining_transforms() -> None:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "pretrain" / "configs" / "train.yaml"))
    parser.update(PRETRAIN_PROTOCOL)
    names = {type(t).__name__: t for t in parser.get_parsed_content("train#preprocessing").transforms}
    assert "CropForegroundd" in names
    assert names["Resized"].mode[0] == "bilinear" and names["Resized"].anti_aliasing[0] is False
    assert names["RandRotated"].mode[0] == "nearest"
    assert names["RandPerspectived"].interpolation == "bicubic"
