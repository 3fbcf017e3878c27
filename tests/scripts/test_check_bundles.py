"""scripts/check_bundles.py: MONAI conformance of every bundle (metadata, workflow properties, verify_net_in_out,
ckpt_export with TorchScript == eager), run the way CI runs it, on tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mflag_monai.data.demo import generate_demo_data
from tiny_bundles import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_bundles.py"
check_bundles = load_script(SCRIPT)  # not via sys.path: scripts/monailabel would shadow the monailabel package

BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/metadata.json"))
CHECKS_WITHOUT_INFERENCE = ["metadata", "train", "net_in_out", "ckpt_export"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_data(tmp_path_factory.mktemp("conformance") / "demo", num_studies=24, image_size=96, progress=False)


def test_every_bundle_passes_every_check(demo: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    overrides = {
        "encoder_depth": 18, "image_depth": 18, "image_size": 64, "num_workers": 0, "pretrained_encoder": None,
        "text_model": str(tiny_bert_dir), "input_path": str(demo / "chexpert" / "CheXpert-v1.0-small" / "valid"),
        "pretrain:dataset_dir": str(demo / "mimic-cxr"), "segmentation:dataset_dir": str(demo / "siim-pneumothorax"),
        "classification:dataset_dir": str(demo / "chexpert"), "detection:dataset_dir": str(demo / "rsna-pneumonia"),
        "pretrain:_meta_#network_data_format#outputs#pred#num_channels": 512,  # a ResNet-18 feature here
    }  # fmt: skip
    out = tmp_path / "conformance.json"
    args = [f"--set={k}={v!r}" for k, v in overrides.items()]
    args += [f"--set={b}:bundle_root={str(tmp_path / b)!r}" for b in BUNDLES]  # outputs go to tmp, not the repo
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MFLAG_MONAI_DEMO_DIR": str(demo)}
    res = subprocess.run([sys.executable, str(SCRIPT), *args, "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    results = json.loads(out.read_text())["results"]
    for bundle in BUNDLES:
        checks = [r["check"] for r in results if r["bundle"] == bundle]
        expected = list(CHECKS_WITHOUT_INFERENCE)
        if (REPO / "bundles" / bundle / "configs" / "inference.yaml").is_file():
            expected.insert(2, "infer")
        assert checks == expected, (bundle, checks)
    lines = [line for line in res.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == len(results) and all(line.startswith("PASS") for line in lines)


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


def test_overrides_for_one_bundle_win() -> None:
    overrides = {"image_size": 64, "segmentation:image_size": 96, "classification:epochs": 1}
    assert check_bundles.bundle_overrides(overrides, "segmentation") == {"image_size": 96}
    assert check_bundles.bundle_overrides(overrides, "pretrain") == {"image_size": 64}
