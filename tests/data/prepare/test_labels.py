"""Label sets, the classification task registry, the CheXpert uncertainty policy and the multi-label strata."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from mflag_monai.data.demo import CHEXPERT_LABELS, MIMIC_LABELS
from mflag_monai.data.prepare import PREPARERS
from mflag_monai.data.prepare.labels import (
    CHEXPERT_14,
    CHEXPERT_COMPETITION,
    CLASSIFICATION_TASKS,
    COVIDX_CLASSES,
    NIH_14,
    TaskSpec,
    chexpert_policy,
    classification_task,
    multilabel_stratum,
    parse_chexpert_value,
    positives_per_label,
)
from mflag_monai.data.prepare.splits import stratified_fraction


def test_label_sets() -> None:
    assert CHEXPERT_COMPETITION == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    assert CHEXPERT_14 == list(CHEXPERT_LABELS)  # CheXpert's column order, as the demo writes train.csv
    assert sorted(CHEXPERT_14) == sorted(MIMIC_LABELS) and set(CHEXPERT_COMPETITION) <= set(CHEXPERT_14)
    assert len(NIH_14) == 14 == len(set(NIH_14)) and "Pleural_Thickening" in NIH_14 and "No Finding" not in NIH_14
    assert COVIDX_CLASSES == ["normal", "pneumonia", "COVID-19"]


def test_task_registry() -> None:
    assert set(CLASSIFICATION_TASKS) == {"chexpert", "rsna-pneumonia", "covidx", "nih-cxr14", "mimic-cxr-labels"}
    assert set(CLASSIFICATION_TASKS) <= set(PREPARERS)  # every task has a preparer of the same name
    rsna = classification_task("rsna-pneumonia")
    assert rsna == TaskSpec(["Pneumonia"], "multi-label") and rsna.num_classes == 1 and rsna.metric == "auroc"
    covidx = classification_task("covidx")
    assert covidx.problem == "multi-class" and covidx.num_classes == 3 and covidx.metric == "accuracy"
    assert classification_task("chexpert").names == CHEXPERT_COMPETITION
    assert classification_task("nih-cxr14").names == NIH_14
    assert classification_task("mimic-cxr-labels").names == CHEXPERT_14
    classification_task("chexpert").names.append("Oops")  # a copy: the registry is untouched
    assert classification_task("chexpert").names == CHEXPERT_COMPETITION
    with pytest.raises(KeyError, match="chexpert, covidx, mimic-cxr-labels, nih-cxr14, rsna-pneumonia"):
        classification_task("padchest")
    with pytest.raises(ValueError, match="problem"):
        TaskSpec(["a"], "regression")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", CHEXPERT_14)
def test_uncertainty_policy_per_label(name: str) -> None:
    ones = name in {"Atelectasis", "Edema", "Pleural Effusion"}
    for cell in ("-1.0", "-1", -1, -1.0, " -1.0 "):
        assert chexpert_policy(name, cell) == (1.0 if ones else 0.0)
    for cell, expected in (("1.0", 1.0), ("1", 1.0), (1, 1.0), ("0.0", 0.0), (0, 0.0)):
        assert chexpert_policy(name, cell) == expected
    for blank in ("", "  ", None, math.nan):
        assert chexpert_policy(name, blank) == 0.0
        assert chexpert_policy(name, blank, blank=None) is None


def test_policy_rejects_unknown_names_and_values() -> None:
    with pytest.raises(KeyError, match="not a CheXpert label"):
        chexpert_policy("Effusion", "-1")  # the NIH spelling: a typo must not silently get U-Zeros
    for bad in ("2", "yes", "0.5"):
        with pytest.raises(ValueError, match="1, 0, -1 or blank"):
            chexpert_policy("Edema", bad)
    assert parse_chexpert_value("-1.0") == -1.0 and parse_chexpert_value("") is None


def test_multilabel_stratum_pools_rare_combinations() -> None:
    entries = [{"label": [1.0, 0.0]}] * 6 + [{"label": [0.0, 0.0]}] * 5 + [{"label": [1.0, 1.0]}, {"label": [0.0, 1.0]}]
    stratum = multilabel_stratum(entries, min_count=5)
    assert stratum(entries[0]) == ("combination", (1.0, 0.0))
    assert stratum(entries[6]) == ("combination", (0.0, 0.0))
    assert stratum(entries[-1]) == stratum(entries[-2]) == ("pooled", True)
    assert stratum({"label": [0.0, 0.0]}) == ("combination", (0.0, 0.0))
    assert positives_per_label(entries, ["a", "b"]) == {"positives: a": 7, "positives: b": 2}


def test_fraction_with_multilabel_strata_is_nested_and_proportional() -> None:
    # 240 items over 3 common combinations (80 each) and 20 items of 20 rare combinations.
    entries = [{"id": i, "label": [float(i % 3 == 0), float(i % 3 == 1), 0.0]} for i in range(240)]
    entries += [{"id": 1000 + i, "label": [1.0, 1.0, float(i)]} for i in range(20)]
    stratum = multilabel_stratum(entries, min_count=50)
    small = stratified_fraction(entries, 0.05, seed=42, stratify_key=stratum)
    large = stratified_fraction(entries, 0.5, seed=42, stratify_key=stratum)
    assert len(small) == 4 * 3 + 1  # 80 per combination → 4; the 20 rare items pooled → 1 (not 20)
    assert Counter(tuple(e["label"][:2]) for e in small if e["id"] < 1000) == {(1.0, 0.0): 4, (0.0, 1.0): 4,
                                                                               (0.0, 0.0): 4}  # fmt: skip
    assert {e["id"] for e in small} <= {e["id"] for e in large}
