"""Boolean bundle settings from the command line: ``--x false`` means false (python-fire hands the config a string)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.bundles import run_bundle_cli
from mflag_monai.bundle import flag
from mflag_monai.utils import InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), ("false", False), ("False", False),
                                                 ("TRUE", True), ("no", False), ("on", True), (0, False), (1, True)])  # fmt: skip
def test_flag_reads_what_the_command_line_gives(value, expected: bool) -> None:
    assert flag(value, "x") is expected


@pytest.mark.parametrize("value", ["ture", "", 2, None])
def test_anything_else_is_refused_naming_the_setting(value) -> None:
    with pytest.raises(InputError, match="expected true or false.*--text_cache"):
        flag(value, "text_cache")


@pytest.mark.slow
def test_text_cache_false_on_the_command_line_builds_no_cache(tmp_path: Path, tiny_bert_dir: Path) -> None:
    options = ["--demo_studies", "12", "--image_depth", "18", "--resize", "40", "--image_size", "32",
               "--batch_size", "4", "--epochs", "1", "--num_workers", "0", "--geometry_interval", "0",
               "--bn_recalibration_samples", "0", "--text_model", str(tiny_bert_dir), "--text_cache", "false"]  # fmt: skip
    config = [REPO / "bundles" / "pretrain" / "configs" / "train.yaml"]
    env = {"MFLAG_MONAI_DEMO_DIR": str(tmp_path / "demo")}
    result = run_bundle_cli("training", config, tmp_path / "b", *options, "--onednn", "false", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not list((tmp_path / "b" / "cache").glob("text/*.pt")), "--text_cache false still built the text cache"
    bad = run_bundle_cli("training", config, tmp_path / "b", *options, "--onednn", "ture", env=env)
    assert bad.returncode != 0 and "expected true or false, got 'ture' (--onednn)" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
