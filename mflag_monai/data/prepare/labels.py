"""Label sets of the classification datasets, the CheXpert uncertainty policy, and label-based strata
(docs/method.md#classification).

The order of every list here is the order of the label vectors the preparers write: a classifier's output channel
``i`` is ``TaskSpec.names[i]``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CHEXPERT_COMPETITION",
    "CHEXPERT_14",
    "NIH_14",
    "COVIDX_CLASSES",
    "UNCERTAIN_AS_POSITIVE",
    "PROBLEMS",
    "TaskSpec",
    "CLASSIFICATION_TASKS",
    "classification_task",
    "FINDINGS",
    "finding_names",
    "chexpert_policy",
    "parse_chexpert_value",
    "DEFAULT_MIN_STRATUM",
    "multilabel_stratum",
    "positives_per_label",
]

#: The 5 CheXpert competition labels (the CheXpert paper's evaluation set, used by MGCA and M-FLAG).
CHEXPERT_COMPETITION: list[str] = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]

#: The 14 CheXpert labels in the column order of CheXpert's ``train.csv`` / ``valid.csv``
#: (``mimic-cxr-2.0.0-chexpert.csv`` holds the same names, alphabetically: columns are read by name).
CHEXPERT_14: list[str] = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
]  # fmt: skip

#: The 14 ChestX-ray14 findings, spelled as in ``Data_Entry_2017.csv`` (``No Finding`` is the absence of all).
NIH_14: list[str] = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]  # fmt: skip

#: The COVIDx classes; the index of a name is the integer label.
COVIDX_CLASSES: list[str] = ["normal", "pneumonia", "COVID-19"]

#: Labels whose uncertain mention (−1) counts as positive ("U-Ones"); every other label maps −1 to 0 ("U-Zeros").
#: These are the choices of the CheXpert paper that MGCA and M-FLAG follow.
UNCERTAIN_AS_POSITIVE: frozenset[str] = frozenset({"Atelectasis", "Edema", "Pleural Effusion"})

Problem = Literal["multi-label", "multi-class"]
#: The kinds of classification problem a :class:`TaskSpec` can describe.
PROBLEMS: tuple[str, ...] = ("multi-label", "multi-class")


@dataclass(frozen=True)
class TaskSpec:
    """What a classification head must output for one dataset.

    Attributes:
        names: the label (multi-label) or class (multi-class) names, in output-channel order.
        problem: ``"multi-label"``: one independent sigmoid/BCE output per name, labels are float vectors, metric
            mean AUROC over the names (a binary task is a one-name multi-label task); ``"multi-class"``: softmax /
            cross-entropy over the names, the label is one integer index, metric accuracy.
    """

    names: list[str]
    problem: Problem

    def __post_init__(self) -> None:
        if self.problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {PROBLEMS}, got {self.problem!r}")
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"names must be non-empty and distinct, got {self.names!r}")

    @property
    def num_classes(self) -> int:
        """Output channels of the head: ``len(names)`` (1 for a binary task)."""
        return len(self.names)

    @property
    def metric(self) -> str:
        """The metric the protocol reports (docs/method.md#classification): ``"auroc"`` (mean over labels) or
        ``"accuracy"``."""
        return "auroc" if self.problem == "multi-label" else "accuracy"


#: The classification tasks, keyed by the name of the preparer that writes their datalists.
CLASSIFICATION_TASKS: dict[str, TaskSpec] = {
    "chexpert": TaskSpec(list(CHEXPERT_COMPETITION), "multi-label"),
    "rsna-pneumonia": TaskSpec(["Pneumonia"], "multi-label"),  # binary: one BCE output
    "covidx": TaskSpec(list(COVIDX_CLASSES), "multi-class"),
    "nih-cxr14": TaskSpec(list(NIH_14), "multi-label"),
    "mimic-cxr-labels": TaskSpec(list(CHEXPERT_14), "multi-label"),
}


def classification_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of dataset ``name`` (a copy: editing its ``names`` leaves the registry intact).

    Raises:
        KeyError: for an unknown name; the message lists the known ones.
    """
    if name not in CLASSIFICATION_TASKS:
        raise KeyError(f"Unknown classification task {name!r}; known: {', '.join(sorted(CLASSIFICATION_TASKS))}")
    spec = CLASSIFICATION_TASKS[name]
    return TaskSpec(list(spec.names), spec.problem)


#: What the masks (segmentation) and boxes (detection) of a dataset mark, by preparer name; channel / box class ``i``
#: is ``FINDINGS[name][i]``. Inference names its outputs with these, and the DICOM results code them.
FINDINGS: dict[str, list[str]] = {
    "siim-pneumothorax": ["pneumothorax"],
    "rsna-pneumonia": ["opacity"],
    "object-cxr": ["foreign object"],
}


def finding_names(name: str) -> list[str]:
    """The names of what dataset ``name``'s masks or boxes mark (a copy of :data:`FINDINGS`' entry).

    Raises:
        KeyError: for an unknown name; the message lists the known ones.
    """
    if name not in FINDINGS:
        raise KeyError(f"Unknown segmentation/detection dataset {name!r}; known: {', '.join(sorted(FINDINGS))}")
    return list(FINDINGS[name])


def parse_chexpert_value(value: Any) -> float | None:
    """A CheXpert-labeller cell as 1.0 / 0.0 / −1.0, or None when blank (empty, whitespace, None or NaN).

    Raises:
        ValueError: for anything else.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a CheXpert label value (1, 0, -1 or blank): {value!r}") from None
    if math.isnan(number):  # pandas reads blanks as NaN
        return None
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"not a CheXpert label value (1, 0, -1 or blank): {value!r}")
    return number


def chexpert_policy(name: str, value: Any, *, blank: float | None = 0.0) -> float | None:
    """Map one CheXpert-labeller value of label ``name`` to a training target (docs/method.md#classification).

    1 and 0 are kept; uncertain (−1) becomes 1 for Atelectasis, Edema and Pleural Effusion and 0 for the other
    labels; blank (not mentioned) becomes ``blank``.

    Args:
        name: one of :data:`CHEXPERT_14` (the MIMIC-CXR labeller uses the same names).
        value: the cell: ``"1.0"``, ``"-1"``, ``""``, a number, ``None`` or NaN.
        blank: the target of a blank cell: 0.0 by default; ``None`` keeps it missing (for a masked loss).

    Raises:
        KeyError: for a name that is not a CheXpert label (a typo would otherwise silently get the U-Zeros rule).
        ValueError: for a value other than 1, 0, −1 or blank.
    """
    if name not in CHEXPERT_14:
        raise KeyError(f"{name!r} is not a CheXpert label; known: {', '.join(CHEXPERT_14)}")
    number = parse_chexpert_value(value)
    if number is None:
        return blank
    if number == -1.0:
        return 1.0 if name in UNCERTAIN_AS_POSITIVE else 0.0
    return number


#: Label combinations with fewer training items than this are pooled (see :func:`multilabel_stratum`).
DEFAULT_MIN_STRATUM: int = 100


def multilabel_stratum(
    entries: Sequence[dict], key: str = "label", min_count: int = DEFAULT_MIN_STRATUM
) -> Callable[[dict], Hashable]:
    """A ``stratify_key`` for :func:`~mflag_monai.data.prepare.splits.stratified_fraction` over multi-label entries.

    Each label combination (the tuple of the entry's label vector) held by at least ``min_count`` of ``entries``
    is its own stratum; rarer combinations are pooled into two strata, "any positive" and "all negative".

    Why not always the exact combination: the fraction draw keeps at least one item of every stratum, so with
    hundreds of rare combinations (14 labels) a 1% draw would over-sample them and overshoot its size. Why not
    always "any positive": common combinations would then drift from their share. The strata depend on the
    entries only, never on the fraction, so draws stay nested (the 1% draw lies inside the 10% draw).
    """
    counts = Counter(tuple(e[key]) for e in entries)

    def stratum(entry: dict) -> Hashable:
        combo = tuple(entry[key])
        if counts[combo] >= min_count:
            return ("combination", combo)
        return ("pooled", any(v > 0 for v in combo))

    return stratum


def positives_per_label(entries: Sequence[dict], names: Sequence[str], key: str = "label") -> dict[str, int]:
    """For summaries: ``{"positives: NAME": count}`` of entries whose label vector is positive (> 0) at NAME."""
    return {f"positives: {name}": sum(1 for e in entries if e[key][i] > 0) for i, name in enumerate(names)}
