"""``bundle_root`` defaults to the folder the ``monai.bundle`` command read a bundle's configs from; outputs never
overwrite an earlier run's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import monai.bundle.__main__
import pytest
from monai.bundle import ConfigWorkflow

from mflag_monai.bundle import _command_line_config_root, bundle_root, fresh_output_dir

REPO = Path(__file__).resolve().parents[2]
MONAI_BUNDLE_MAIN = monai.bundle.__main__.__file__  # sys.argv[0] under ``python -m monai.bundle``
# every config, with the ones it is layered over (as the bundles' docs run them)
CONFIGS = {
    "pretrain": [["train.yaml"], ["train.yaml", "evaluate.yaml"], ["inference.yaml"]],
    "classification": [
        ["train.yaml"],
        ["train.yaml", "evaluate.yaml"],
        ["train.yaml", "zero_shot.yaml"],
        ["inference.yaml"],
    ],
    "segmentation": [["train.yaml"], ["train.yaml", "evaluate.yaml"], ["inference.yaml"]],
    "detection": [["train.yaml"], ["train.yaml", "evaluate.yaml"], ["inference.yaml"]],
}


def _resolved_root(config_files: list[Path]) -> str:
    """``bundle_root`` as ``python -m monai.bundle run --config_file ...`` resolves it (its ``ConfigWorkflow``, with
    the command line it was given); nothing runs."""
    listed = "[" + ",".join(repr(str(c)) for c in config_files) + "]"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", [MONAI_BUNDLE_MAIN, "run", "--config_file", listed])
        return _workflow_root(config_files)


def _workflow_root(config_files: list[Path]) -> str:
    workflow = ConfigWorkflow(config_file=[str(c) for c in config_files], logging_file=False, workflow_type="infer")
    workflow.parser.parse(reset=True)
    workflow._is_initialized = True  # read one property without running `initialize` (it creates folders)
    return workflow.bundle_root


@pytest.mark.parametrize("bundle", sorted(CONFIGS))
def test_a_copied_bundle_resolves_to_itself(bundle: str, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / bundle
    shutil.copytree(REPO / "bundles" / bundle, copy)
    for files in CONFIGS[bundle]:
        assert _resolved_root([copy / "configs" / f for f in files]) == str(copy), files


def test_relative_config_paths_give_the_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, ``--config_file bundles/x/configs/train.yaml`` keeps ``bundles/x``, as before."""
    shutil.copytree(REPO / "bundles" / "segmentation", tmp_path / "bundles" / "segmentation")
    monkeypatch.chdir(tmp_path)
    assert _resolved_root([Path("bundles/segmentation/configs/train.yaml")]) == os.path.join("bundles", "segmentation")


def test_an_explicit_bundle_root_wins(tmp_path: Path) -> None:
    config = REPO / "bundles" / "segmentation" / "configs" / "inference.yaml"
    workflow = ConfigWorkflow(
        config_file=str(config), logging_file=False, workflow_type=None, bundle_root=str(tmp_path)
    )
    workflow.parser.parse(reset=True)
    assert workflow.parser.get_parsed_content("ckpt_path") == str(tmp_path / "models" / "model.pt")


def test_outside_the_command_the_default_applies(tmp_path: Path) -> None:
    """A ``ConfigWorkflow`` built in Python (a script, MONAI Label) is given ``bundle_root``; without it, the default."""
    copy = tmp_path / "segmentation"
    shutil.copytree(REPO / "bundles" / "segmentation", copy)
    assert _workflow_root([copy / "configs" / "train.yaml"]) == "bundles/segmentation"
    assert bundle_root("bundles/segmentation") == "bundles/segmentation"


@pytest.mark.parametrize(
    "arguments",
    [
        ["--config_file", "b/configs/train.yaml"],
        ["--config_file=b/configs/train.yaml"],
        ["--config_file", "['b/configs/train.yaml', 'b/configs/evaluate.yaml']"],
        ["--config_file", "b/configs/train.yaml,b/configs/evaluate.yaml"],
        ["--epochs", "2", "--config_file", "b/configs/train.yaml", "--bundle_root", "x"],
    ],
)
def test_every_config_file_form_of_the_command(arguments: list[str]) -> None:
    assert _command_line_config_root([MONAI_BUNDLE_MAIN, "run", "training", *arguments]) == Path("b/configs")


def test_other_commands_are_not_read() -> None:
    assert _command_line_config_root(["pytest", "--config_file", "b/configs/train.yaml"]) is None
    assert _command_line_config_root([MONAI_BUNDLE_MAIN, "run", "training"]) is None


def test_a_run_never_writes_over_an_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "inference"
    assert fresh_output_dir(out) == str(out)  # new
    out.mkdir()
    assert fresh_output_dir(out) == str(out)  # empty
    (out / "predictions.csv").write_text("earlier run")
    assert fresh_output_dir(out) == str(tmp_path / "inference_2")
    (tmp_path / "inference_2").mkdir()
    (tmp_path / "inference_2" / "predictions.csv").write_text("second run")
    assert fresh_output_dir(out) == str(tmp_path / "inference_3")
