"""The three downstream ``train.yaml`` stay in step.

Each bundle folder stands alone (MONAI Label and the model zoo take one bundle at a time), so the plumbing the three
share is carried by each as a copy of the package's fragments (``mflag_monai/configs/downstream_train.yaml``): the
copies must equal the fragments, and every id the three share must have the same value unless listed below. Ids are
MONAI's key paths (``train#dataloader#collate_fn``; list items by index, ``train#handlers#3#output_transform``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mflag_monai.configs import read_fragments, stale_fragments

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
    # The task itself: the ids the shared fragments reference.
    "datalist": "the task the datalist is prepared and checked for",
    "image_multiple": "segmentation's image_size must divide by 32 (the U-Net decoder's skip connections)",
    "batch_lists": "detection batches are lists (boxes vary in number)",
    "loss_output": "detection logs its loss terms (classification and box regression)",
    "model_record#label_names": "the task's label or finding names",
    "network_def#_target_": "classifier, U-Net or RetinaNet",
    "network_def#num_classes": "the classification task's labels; one box class in detection",
    "train#preprocessing#_target_": "each task's transforms (labels, masks or boxes)",
    "train#trainer#_target_": "detection has its own iteration (DetectionTrainer)",
    "train#trainer#network": "detection trains the RetinaNet detector around the network",
    "validate#evaluator#_target_": "detection has its own iteration (DetectionEvaluator)",
    "validate#evaluator#network": "detection evaluates the detector around the network",
    "validate#postprocessing#transforms#1#sigmoid": "a softmax for multi-class AUROC; a sigmoid for Dice",
}

#: What a bundle's own part holds besides its hyper-parameters (at most this many lines; the rest is the fragments).
MAX_OWN_TASK_LINES = 75


def test_fragment_copies_are_current() -> None:
    """Every downstream ``train.yaml`` holds every shared fragment, equal to the package's
    (``python scripts/sync_bundle_configs.py`` rewrites them)."""
    assert len(read_fragments()) == 4
    assert not stale_fragments(BUNDLES), stale_fragments(BUNDLES)


def test_a_drifted_copy_is_found(tmp_path: Path) -> None:
    """The check can fail: one changed line in one copy is reported for that file."""
    for name in DOWNSTREAM:
        (tmp_path / name / "configs").mkdir(parents=True)
        text = (BUNDLES / name / "configs" / "train.yaml").read_text()
        if name == "segmentation":
            text = text.replace("shuffle: true", "shuffle: false", 1)
        (tmp_path / name / "configs" / "train.yaml").write_text(text)
    stale = stale_fragments(tmp_path)
    assert list(stale) == [str(tmp_path / "segmentation" / "configs" / "train.yaml")]
    assert stale[str(tmp_path / "segmentation" / "configs" / "train.yaml")] == ["fragment 'train' differs"]


def test_own_parts_are_small() -> None:
    """Outside the hyper-parameters and the fragments, a bundle's ``train.yaml`` holds only its task."""
    for name in DOWNSTREAM:
        text = (BUNDLES / name / "configs" / "train.yaml").read_text()
        own = text.split("# ---------------------------------------------------------------- this bundle's task")[1]
        lines, inside = [], False
        for line in own.splitlines():
            if "# >>> shared:" in line:
                inside = True
            elif "# <<< shared:" in line:
                inside = False
            elif not inside and line.strip() and not line.lstrip().startswith("#"):
                lines.append(line)
        assert len(lines) <= MAX_OWN_TASK_LINES, (name, len(lines))


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
