"""Seeded splits and stratified fraction draws: deterministic, grouped, stratified, hash-independent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mflag_monai.data.prepare.splits import SPLIT_NAMES, seeded_split, seeded_subset, stratified_fraction

SPLITS_FILE = Path(__file__).resolve().parents[3] / "mflag_monai" / "data" / "prepare" / "splits.py"


def make_items(n: int = 200, positives: int = 50, per_patient: int = 2) -> list[dict]:
    step = n // positives
    return [{"id": f"img{i}", "patient": f"p{i // per_patient}", "label": int(i % step == 0)} for i in range(n)]


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


def test_split_sizes_partition_and_order() -> None:
    items = make_items(100, 25, per_patient=1)
    split = seeded_split(items)
    assert [len(split[name]) for name in SPLIT_NAMES] == [70, 15, 15]
    all_ids = sum((ids(split[name]) for name in SPLIT_NAMES), [])
    assert sorted(all_ids) == sorted(ids(items))  # a partition
    position = {item["id"]: i for i, item in enumerate(items)}
    for name in SPLIT_NAMES:  # input order kept within each split
        assert [position[i] for i in ids(split[name])] == sorted(position[i] for i in ids(split[name]))


def test_split_reproducible_and_seed_dependent() -> None:
    items = make_items()
    assert seeded_split(items, seed=42) == seeded_split(items, seed=42)
    assert seeded_split(items, seed=42) != seeded_split(items, seed=43)


def test_split_keeps_groups_together() -> None:
    items = make_items(120, 30, per_patient=3)
    split = seeded_split(items, seed=1, group_key="patient")
    where = {}
    for name in SPLIT_NAMES:
        for item in split[name]:
            assert where.setdefault(item["patient"], name) == name
    assert len(split["training"]) == 3 * round(40 * 0.7)  # sizes count groups


def test_split_stratified_proportions() -> None:
    items = make_items(200, 40, per_patient=1)  # 40 positives, 160 negatives
    split = seeded_split(items, seed=5, stratify_key="label")
    positives = {name: sum(e["label"] for e in split[name]) for name in SPLIT_NAMES}
    assert positives == {"training": 28, "validation": 6, "test": 6}
    assert [len(split[name]) for name in SPLIT_NAMES] == [140, 30, 30]
    # callables work as keys too
    assert seeded_split(items, seed=5, stratify_key=lambda e: e["label"]) == split


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        seeded_split([1, 2, 3], fractions=(0.5, 0.5))
    with pytest.raises(ValueError):
        seeded_split([1, 2, 3], fractions=(1.0, -0.5, 0.5))


def test_fraction_one_returns_everything_in_order() -> None:
    items = make_items(30, 10)
    assert stratified_fraction(items, 1.0, stratify_key="label") == items


def test_fraction_stratified_reproducible_nested() -> None:
    items = make_items(400, 40, per_patient=1)  # 40 positives, 360 negatives
    tenth = stratified_fraction(items, 0.1, seed=42, stratify_key="label")
    assert Counter(e["label"] for e in tenth) == {0: 36, 1: 4}
    assert tenth == stratified_fraction(items, 0.1, seed=42, stratify_key="label")
    assert tenth != stratified_fraction(items, 0.1, seed=7, stratify_key="label")
    hundredth = stratified_fraction(items, 0.01, seed=42, stratify_key="label")
    # at least one per non-empty stratum: 0.4 positives round to 0 but one is kept
    assert Counter(e["label"] for e in hundredth) == {0: 4, 1: 1}
    assert set(ids(hundredth)) <= set(ids(tenth))  # nested draws
    position = {item["id"]: i for i, item in enumerate(items)}
    assert [position[i] for i in ids(tenth)] == sorted(position[i] for i in ids(tenth))


def test_fraction_rejects_out_of_range() -> None:
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            stratified_fraction([1, 2], bad)


def test_seeded_subset() -> None:
    items = list(range(20))
    picked = seeded_subset(items, 5, seed=3)
    assert len(picked) == 5 and picked == sorted(picked) and picked == seeded_subset(items, 5, seed=3)
    assert seeded_subset(items, 50) == items


_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("splits_probe", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
items = [{"id": f"i{k}", "patient": f"p{k % 17}", "label": ("a", "b", "c")[k % 3]} for k in range(90)]
split = mod.seeded_split(items, seed=42, group_key="patient", stratify_key="label")
frac = mod.stratified_fraction(items, 0.2, seed=42, stratify_key="label")
print(json.dumps([{k: [e["id"] for e in v] for k, v in split.items()}, [e["id"] for e in frac]]))
"""


@pytest.mark.slow
def test_independent_of_hash_randomisation() -> None:
    # The module alone (numpy only) is loaded, to keep the two interpreters fast.
    outputs = []
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        cmd = [sys.executable, "-c", _PROBE, str(SPLITS_FILE)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(res.stdout))
    assert outputs[0] == outputs[1]
