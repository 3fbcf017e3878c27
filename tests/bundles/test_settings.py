"""Bundle settings checked at start (``mflag_monai.bundle.check_settings``) and the run lock of a bundle folder
(``lock_bundle_root``): impossible values end in one ``error: ... (--setting)`` line with exit status 2, and a second
run into a busy bundle folder stops naming the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.bundles import REPO, run_bundle_cli
from mflag_monai.bundle import check_settings, lock_bundle_root
from mflag_monai.utils import InputError


@pytest.mark.parametrize(
    ("settings", "words"),
    [({"batch_size": 0}, "must be at least 1, got 0 (--batch_size)"),
     ({"batch_size": -4}, "must be at least 1, got -4 (--batch_size)"),
     ({"batch_size": "many"}, "expected a whole number, got 'many' (--batch_size)"),
     ({"batch_size": 16, "micro_batch_size": 0}, "must be at least 1, got 0 (--micro_batch_size)"),
     ({"batch_size": 16, "micro_batch_size": 1}, "BatchNorm needs more than one value per channel"),
     ({"batch_size": 16, "micro_batch_size": 32}, "32 is larger than --batch_size 16 (--micro_batch_size)"),
     ({"image_size": 32, "resize": 16}, "16 is smaller than --image_size 32: images are resized, then cropped"),
     ({"image_size": 16}, "must be at least 32, got 16 (--image_size)"),
     ({"image_size": 40, "image_multiple": 32}, "40 is not a multiple of 32, which this network needs; use 32 or 64"),
     ({"epochs": 0}, "(--epochs)"), ({"learning_rate": -1e-3}, "expected a number >= 0, got -0.001 (--learning_rate)"),
     ({"learning_rate": "nan"}, "(--learning_rate)"), ({"num_workers": -1}, "(--num_workers)"),
     ({"fraction": 1.5}, "expected a share of the labels in (0, 1], got 1.5 (--fraction)"),
     ({"val_interval": 2.5}, "expected a whole number, got 2.5 (--val_interval)")],
)  # fmt: skip
def test_impossible_settings_are_one_line(settings: dict, words: str) -> None:
    with pytest.raises(InputError) as caught:
        check_settings(**settings)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_sensible_settings_pass() -> None:
    check_settings(batch_size=512, micro_batch_size=32, image_size=224, resize=256, epochs=50, learning_rate=2e-5,
                   num_workers=0, val_interval=1, fraction=0.01)  # fmt: skip
    check_settings(batch_size="16", micro_batch_size="null", image_size=128, resize=None, image_multiple=32)


def test_a_live_run_holds_the_folder_and_a_dead_ones_lock_is_taken_over(tmp_path: Path, capsys) -> None:
    lock = tmp_path / ".run.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{sleeper.pid} 2026-01-01T00:00:00\n")
        with pytest.raises(InputError, match=f"another run \\(PID {sleeper.pid}, started 2026-01-01T00:00:00\\)"):
            lock_bundle_root(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lock_bundle_root(tmp_path) == lock  # the PID is gone now: taken over
    assert f"taking over {lock}" in capsys.readouterr().out
    assert lock.read_text().split()[0] == str(os.getpid())


@pytest.mark.slow
def test_a_bad_setting_through_the_cli_exits_2_in_one_line(tmp_path: Path) -> None:
    configs = [str(REPO / "bundles" / "segmentation" / "configs" / "train.yaml")]
    result = run_bundle_cli("training", configs, tmp_path / "b", "--image_size", "40")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: 40 is not a multiple of 32")


@pytest.mark.slow
@pytest.mark.parametrize(("bundle", "config"), [("classification", "train.yaml"), ("detection", "inference.yaml")])
def test_the_renamed_depth_setting_is_refused_naming_the_new_one(tmp_path: Path, bundle: str, config: str) -> None:
    """``--encoder_depth`` (renamed ``image_depth``) would otherwise be a new, unused key: a silently wrong depth."""
    configs = [str(REPO / "bundles" / bundle / "configs" / config)]
    result = run_bundle_cli("training" if config == "train.yaml" else None, configs, tmp_path / "b",
                            "--encoder_depth", "18")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: renamed: use --image_depth 18") and "(--encoder_depth)" in last


def test_renamed_settings_pass_when_not_given() -> None:
    from mflag_monai.bundle import refuse_renamed
    from mflag_monai.utils.errors import InputError

    refuse_renamed(encoder_depth=None)
    refuse_renamed(encoder_depth="null")
    with pytest.raises(InputError, match="--image_depth 50"):
        refuse_renamed(encoder_depth=50)


@pytest.mark.slow
def test_a_second_run_into_a_busy_bundle_folder_stops(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / ".run.lock").write_text(f"{os.getpid()} 2026-01-01T00:00:00\n")  # this test process: alive
    configs = [str(REPO / "bundles" / "classification" / "configs" / "train.yaml")]
    result = run_bundle_cli("training", configs, root)
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert f"another run (PID {os.getpid()}" in line and str(root) in line and "Traceback" not in result.stderr
    assert (root / ".run.lock").read_text().startswith(str(os.getpid()))  # the first run's lock is left alone
