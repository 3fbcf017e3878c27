"""scripts/check_bundles.py: MONAI conformance of every bundle (metadata, workflow properties, verify_net_in_out,
ckpt_export with TorchScript == eager), run the way CI runs it, on tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.bundles import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_bundles.py"
check_bundles = load_script(SCRIPT)  # by file location: no sys.path edit

BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/metadata.json"))
CHECKS = ["files", "metadata", "train", "infer", "net_in_out", "ckpt_export"]
TRAINED = ("pretrain", "segmentation")  # given weights below; the others have none, as on a fresh clone


@pytest.fixture(scope="module")
def demo(demo_data) -> Path:
    return demo_data(24, 96)


def _random_weights(bundle_root: Path, config: str, net_id: str, overrides: dict) -> None:
    """``models/model.pt`` as training would leave it (random values: the checks look at layout, not skill)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(config))
    parser.update({"bundle_root": str(bundle_root), **overrides})
    (bundle_root / "models").mkdir(parents=True)
    torch.save(parser.get_parsed_content(net_id).state_dict(), bundle_root / "models" / "model.pt")


@pytest.mark.slow
def test_every_bundle_passes_or_needs_weights(demo: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    overrides = {
        "image_depth": 18, "image_size": 64, "num_workers": 0, "pretrained_encoder": None,
        "text_model": str(tiny_bert_dir), "input_path": str(demo / "chexpert" / "CheXpert-v1.0-small" / "valid"),
        "pretrain:dataset_dir": str(demo / "mimic-cxr"), "segmentation:dataset_dir": str(demo / "siim-pneumothorax"),
        "classification:dataset_dir": str(demo / "chexpert"), "detection:dataset_dir": str(demo / "rsna-pneumonia"),
        "pretrain:text_hidden_size": 32,  # the tiny BERT's width
        "pretrain:_meta_#network_data_format#outputs#pred#num_channels": 512 + 1024,  # ResNet-18 feature + projection
    }  # fmt: skip
    _random_weights(
        tmp_path / "pretrain",
        REPO / "bundles/pretrain/configs/inference.yaml",
        "network_def",
        {"image_depth": 18, "text_hidden_size": 32},
    )
    _random_weights(
        tmp_path / "segmentation",
        REPO / "bundles/segmentation/configs/inference.yaml",
        "network_def",
        {"image_depth": 18},
    )
    out = tmp_path / "conformance.json"
    args = [f"--set={k}={v!r}" for k, v in overrides.items()]
    args += [f"--set={b}:bundle_root={str(tmp_path / b)!r}" for b in BUNDLES]  # outputs go to tmp, not the repo
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MFLAG_MONAI_DEMO_DIR": str(demo)}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    results = json.loads(out.read_text())["results"]
    for bundle in BUNDLES:
        mine = [r for r in results if r["bundle"] == bundle]
        assert [r["check"] for r in mine] == CHECKS, (bundle, mine)
        status = {r["check"]: r["status"] for r in mine}
        if bundle in TRAINED:
            assert set(status.values()) == {"pass"}, (bundle, mine)
            assert "from the trained checkpoint" in mine[-1]["detail"]
        else:  # no models/model.pt: the files check says how to make it; everything else still runs and passes
            assert status == {**dict.fromkeys(CHECKS, "pass"), "files": "needs"}, (bundle, mine)
            assert (
                mine[0]["detail"]
                == f"needs trained weights: python -m monai.bundle run training --config_file bundles/{bundle}/configs/train.yaml"
            )
    lines = [line for line in res.stdout.splitlines() if line.startswith(("PASS", "FAIL", "NEEDS"))]
    assert len(lines) == len(results) and not any(line.startswith("FAIL") for line in lines)
    assert "need trained weights, 0 failed" in res.stdout
    # the checks leave no run behind: no TensorBoard event file in any bundle's eval/
    assert not list(tmp_path.glob("*/eval/**/events.out.tfevents*"))


def test_downstream_training_needs_the_pretrained_encoder(tmp_path: Path) -> None:
    """A fresh clone: no encoder.pt, so the downstream train check is NEEDS with the pretrain bundle's command."""
    for bundle in ("classification", "segmentation", "detection"):
        configs = REPO / "bundles" / bundle / "configs"
        with pytest.raises(check_bundles.NeedsWeights) as need:
            check_bundles.check_properties(configs, "train.yaml", "train", {"bundle_root": str(tmp_path / bundle)})
        assert "python -m monai.bundle run training --config_file" in str(need.value)
        assert str(need.value).split()[6].endswith("bundles/pretrain/configs/train.yaml"), str(need.value)
        assert str(tmp_path / "pretrain" / "models" / "encoder.pt") in str(need.value)


def test_the_bundles_metadata_agree(tmp_path: Path) -> None:
    metadata = {b: json.loads((REPO / "bundles" / b / "configs" / "metadata.json").read_text()) for b in BUNDLES}
    for bundle in BUNDLES:
        others = {k: v for k, v in metadata.items() if k != bundle}
        check_bundles.check_metadata(REPO / "bundles" / bundle / "configs", others)
        declared = metadata[bundle].get("pretrained_encoder")
        assert (declared is not None) == (bundle != "pretrain"), bundle  # the downstream bundles say what they take
    # a pin that disagrees with another bundle's, and the deprecated key MONAI maps onto the required list
    meta = json.loads(json.dumps(metadata["segmentation"]))
    meta["required_packages_version"]["pydicom"] = "3.0.2"
    meta["optional_packages_version"] = {"mlflow": "3.17.2"}
    (tmp_path / "metadata.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "pretrained_encoder"}))
    with pytest.raises(ValueError) as err:
        check_bundles.check_metadata(tmp_path, {"detection": metadata["detection"]})
    assert "pydicom==3.0.2 but ==2.4.4 in detection" in str(err.value) and "optional_packages_version" in str(err.value)


def test_optional_packages_version_would_replace_the_required_list() -> None:
    """Why the metadata check refuses the key: MONAI's parser renames it onto required_packages_version."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_meta({"required_packages_version": {"pydicom": "2.4.4"}, "optional_packages_version": {"mlflow": "1"}})
    assert parser.get("_meta_")["required_packages_version"] == {"mlflow": "1"}


def test_failures_name_their_root_cause() -> None:
    try:
        try:
            raise FileNotFoundError("encoder.pt not found")
        except FileNotFoundError as inner:
            raise RuntimeError("Failed to instantiate component 'x'\nwith keywords") from inner
    except RuntimeError as err:
        text = check_bundles.describe_error(err)
    assert text == "RuntimeError: Failed to instantiate component 'x' <- FileNotFoundError: encoder.pt not found"


def test_metadata_check_names_what_is_missing(tmp_path: Path) -> None:
    meta = json.loads((REPO / "bundles" / "segmentation" / "configs" / "metadata.json").read_text())
    del meta["copyright"]
    meta["version"] = "9.9.9"
    del meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError) as err:
        check_bundles.check_metadata(tmp_path)
    message = str(err.value)
    assert "'copyright'" in message and "9.9.9" in message and "outputs.pred.channel_def" in message


@pytest.mark.parametrize("bundle", ["pretrain", "classification", "segmentation", "detection"])
def test_value_ranges_are_numbers_as_the_model_zoo_schema_types_them(tmp_path: Path, bundle: str) -> None:
    meta = json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())
    check_bundles.check_metadata(REPO / "bundles" / bundle / "configs")  # the shipped metadata passes
    meta["network_data_format"]["outputs"]["pred"]["value_range"] = ["-inf", "inf"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="value_range must hold numbers"):
        check_bundles.check_metadata(tmp_path)


def test_overrides_for_one_bundle_win() -> None:
    overrides = {"image_size": 64, "segmentation:image_size": 96, "classification:epochs": 1}
    assert check_bundles.bundle_overrides(overrides, "segmentation") == {"image_size": 96}
    assert check_bundles.bundle_overrides(overrides, "pretrain") == {"image_size": 64}


def test_export_refuses_damaged_weights(tmp_path: Path) -> None:
    """MONAI's ckpt_export loads the file as it is: the check verifies the weights' SHA-256 before exporting."""
    from mflag_monai.utils.io import ChecksumMismatchError, atomic_torch_save

    model = tmp_path / "models" / "model.pt"
    model.parent.mkdir()
    atomic_torch_save({"w": torch.zeros(4096)}, model)  # with its model.pt.sha256
    data = bytearray(model.read_bytes())
    data[-2048:-1024] = b"\xff" * 1024  # damaged in place, same size
    model.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="model.pt"):
        check_bundles.check_export(REPO / "bundles" / "segmentation", {"bundle_root": str(tmp_path)})
