"""Boolean bundle settings from the command line: ``--x false`` means false (python-fire hands the config a string)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file",
           str(REPO / "bundles" / "pretrain" / "configs" / "train.yaml"), "--bundle_root", str(tmp_path / "b"),
           "--demo_studies", "12", "--image_depth", "18", "--resize", "40", "--image_size", "32", "--batch_size", "4",
           "--epochs", "1", "--num_workers", "0", "--geometry_interval", "0", "--bn_recalibration_samples", "0",
           "--text_model", str(tiny_bert_dir), "--text_cache", "false", "--onednn", "false"]  # fmt: skip
    env = {**os.environ, "MFLAG_MONAI_DEMO_DIR": str(tmp_path / "demo"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not list((tmp_path / "b" / "cache").glob("text/*.pt")), "--text_cache false still built the text cache"
    bad = subprocess.run(
        [*cmd[:-2], "--onednn", "ture"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert bad.returncode != 0 and "expected true or false, got 'ture' (--onednn)" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
