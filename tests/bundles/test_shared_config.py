"""The three downstream ``train.yaml`` stay in step: every id they share has the same value, unless listed below.

Each bundle folder stands alone (MONAI Label and the model zoo take one bundle at a time), so the plumbing the three
share is written out in each of them; this test keeps those copies from drifting apart. Ids are MONAI's key paths
(``train#dataloader#collate_fn``; list items by index, ``train#handlers#3#output_transform``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
DOWNSTREAM = ("classification", "segmentation", "detection")

#: Shared ids whose values differ on purpose, and why.
INTENDED_DIFFERENCES = {
    # Hyper-parameters: each task's demo defaults and protocol.
    "dataset": "each bundle's default dataset",
    "fraction": "detection trains on all of the demo's few boxes",
    "batch_size": "per-task protocol",
    "epochs": "per-task demo length",
    "weight_decay": "per-task protocol",
    # Names.
    "bundle_root": "the bundle's own folder",
    "experiment_name": "one MLflow experiment per bundle",
    # The task itself.
    "datalist": "the task the datalist is prepared and checked for",
    "network_def#_target_": "classifier, U-Net or RetinaNet",
    "network_def#num_classes": "the classification task's labels; one box class in detection",
    "train#preprocessing#_target_": "each task's transforms (labels, masks or boxes)",
    "train#dataloader#collate_fn": "detection batches are lists (boxes vary in number)",
    "train#handlers#3#output_transform": "detection logs its loss terms (classification and box regression)",
    "train#handlers#4#output_transform": "detection logs its loss terms (classification and box regression)",
    "train#trainer#_target_": "detection has its own iteration (DetectionTrainer)",
    "train#trainer#network": "detection trains the RetinaNet detector around the network",
    "validate#evaluator#_target_": "detection has its own iteration (DetectionEvaluator)",
    "validate#evaluator#network": "detection evaluates the detector around the network",
    "validate#postprocessing#transforms#1#sigmoid": "a softmax for multi-class AUROC; a sigmoid for Dice",
    "validate#early_stop#score_function": "each task's key metric (AUROC, Dice, mAP)",
    "initialize#1": "segmentation's image_size must divide by 32 (the U-Net decoder's skip connections)",
}


def _flatten(node: object, prefix: str = "") -> dict[str, object]:
    """``{id: value}`` for every leaf of a parsed config, ids as MONAI writes them (``a#b#0``)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return {prefix: node}
    out: dict[str, object] = {}
    for key, value in items:
        out.update(_flatten(value, f"{prefix}#{key}" if prefix else str(key)))
    return out


@pytest.fixture(scope="module")
def configs() -> dict[str, dict[str, object]]:
    return {
        name: _flatten(yaml.safe_load((BUNDLES / name / "configs" / "train.yaml").read_text())) for name in DOWNSTREAM
    }


def _shared(configs: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """``{id: {bundle: value}}`` for the ids at least two of the configs hold."""
    ids = sorted(set().union(*configs.values()))
    shared = {i: {name: cfg[i] for name, cfg in configs.items() if i in cfg} for i in ids}
    return {i: values for i, values in shared.items() if len(values) >= 2}


def test_shared_ids_have_the_same_value(configs: dict[str, dict[str, object]]) -> None:
    shared = _shared(configs)
    assert len(shared) > 100  # the plumbing is parsed (a broken parse would share nothing)
    drifted = {
        i: values
        for i, values in shared.items()
        if i not in INTENDED_DIFFERENCES and len({repr(v) for v in values.values()}) > 1
    }
    assert not drifted, "shared ids that drifted apart (make them equal, or list them in INTENDED_DIFFERENCES):\n" + (
        "\n".join(f"  {i}: {values}" for i, values in drifted.items())
    )


def test_intended_differences_are_current(configs: dict[str, dict[str, object]]) -> None:
    """Every listed difference is still a shared id whose values differ (the list does not go stale)."""
    shared = _shared(configs)
    stale = [i for i in INTENDED_DIFFERENCES if i not in shared or len({repr(v) for v in shared[i].values()}) == 1]
    assert not stale, f"no longer shared or no longer different: {stale}"


def test_bundles_stand_alone() -> None:
    """No downstream config reads another bundle's configs (the pre-trained encoder file is data, not config)."""
    for name in DOWNSTREAM:
        for path in (BUNDLES / name / "configs").glob("*.yaml"):
            text = path.read_text()
            others = [other for other in DOWNSTREAM + ("pretrain",) if other != name]
            assert not any(f"{other}/configs" in text or f"'{other}', 'configs'" in text for other in others), path
