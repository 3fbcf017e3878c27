"""NIH ChestX-ray14 (``Data_Entry_2017.csv``, official split lists, ``images*/``) → 14-label datalist.

Format: docs/method.md#nih-chestx-ray14.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ...utils.formats import BITMAP_SUFFIXES
from .labels import DEFAULT_MIN_STRATUM, NIH_14, multilabel_stratum, positives_per_label
from .registry import PreparedDatalist, register_preparer, walk_files
from .splits import SPLIT_NAMES, seeded_split, stratified_fraction
from .tables import read_csv_rows

__all__ = ["NO_FINDING", "prepare_nih", "read_nih_entries"]

ENTRY_FILE = "Data_Entry_2017.csv"
TRAIN_VAL_LIST, TEST_LIST = "train_val_list.txt", "test_list.txt"
NO_FINDING = "No Finding"


def _entry_file(root: Path) -> Path:
    """``Data_Entry_2017.csv``, else the one ``Data_Entry_2017*.csv`` (the 2020 re-release is ``..._v2020.csv``)."""
    path = root / ENTRY_FILE
    if not path.is_file():
        matches = sorted(root.glob("Data_Entry_2017*.csv"))
        if len(matches) == 1:
            return matches[0]
        raise FileNotFoundError(
            f"{path} not found: --root must be the ChestX-ray14 folder holding {ENTRY_FILE}, {TRAIN_VAL_LIST}, "
            f"{TEST_LIST} and the images*/ folders"
        )
    return path


def read_nih_entries(path: Path) -> tuple[dict[str, dict], Counter[str]]:
    """Read ``Data_Entry_2017.csv``: Image Index → ``{"label": [14 floats, NIH_14 order], "patient_id"}``.

    ``Finding Labels`` joins findings with ``|``; ``No Finding`` is all zeros. Findings outside :data:`NIH_14` are
    ignored and counted in the returned counter (the official file has none).

    Raises:
        InputError: a needed column is missing (or repeated).
    """
    entries: dict[str, dict] = {}
    unknown: Counter[str] = Counter()
    for row in read_csv_rows(path, ("Image Index", "Finding Labels", "Patient ID")):
        name = row["Image Index"].strip()
        if not name:
            continue
        if name in entries:
            unknown["dropped: Image Index listed twice (the first row kept)"] += 1
            continue
        found = {x.strip() for x in row["Finding Labels"].split("|")} - {NO_FINDING, ""}
        for extra in sorted(found - set(NIH_14)):
            unknown[f"ignored finding name {extra!r}"] += 1
        entries[name] = {
            "label": [1.0 if finding in found else 0.0 for finding in NIH_14],
            "patient_id": row["Patient ID"].strip(),
        }
    return entries, unknown


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: ChestX-ray14's official split is {TRAIN_VAL_LIST} + {TEST_LIST}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@register_preparer("nih-cxr14")
def prepare_nih(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    val_fraction: float = 0.1,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    **_: object,
) -> PreparedDatalist:
    """Turn NIH ChestX-ray14 into a 14-label classification datalist with the official split.

    Steps: read ``Data_Entry_2017.csv``; find every image file under ``root`` in one walk (the release spreads them
    over ``images_001/images`` … ``images_012/images``); ``test_list.txt`` is the test split; validation is a seeded
    ``val_fraction`` of ``train_val_list.txt``'s patients (grouped; not stratified, as for CheXpert: label strata of
    a few patients would round to no validation patient); then ``fraction`` of the training split is kept,
    stratified by label combination with rare combinations pooled by "any positive"
    (:func:`~mflag_monai.data.prepare.labels.multilabel_stratum`). Every ChestX-ray14 image is frontal (PA or AP).

    Args:
        root: the ChestX-ray14 folder.
        out: unused (no files are written besides the datalist).
        fraction: share of the training split kept, in ``(0, 1]``.
        seed: seed of the validation split and of the fraction draw.
        val_fraction: share of the train_val patients put in validation.
        min_stratum: label combinations with fewer training images are pooled in the fraction draw.

    Returns:
        Entries ``{"image": abs path, "label": [14 floats, NIH_14 order], "patient_id"}``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root).expanduser().resolve()
    entry_file = _entry_file(root)
    entries, counts = read_nih_entries(entry_file)
    lists = {"train_val": _read_list(root / TRAIN_VAL_LIST), "test": _read_list(root / TEST_LIST)}

    # One walk of the tree; a name found twice is ambiguous, so the first (sorted) wins and the rest are counted.
    files: dict[str, Path] = {}
    for path in sorted(walk_files(root)):
        if path.suffix.lower() in BITMAP_SUFFIXES and path.is_file():
            if path.name in files:
                counts["duplicate image names (first kept)"] += 1
            else:
                files[path.name] = path

    records: dict[str, list[dict]] = {}
    listed: set[str] = set()
    for name, images in lists.items():
        records[name] = []
        for image in images:
            if image in listed:
                counts["dropped: listed twice (first list kept)"] += 1
                continue
            listed.add(image)
            if image not in entries:
                counts[f"dropped: not in {entry_file.name}"] += 1
                continue
            if image not in files:
                counts["dropped: image file missing"] += 1
                continue
            records[name].append({"image": str(files[image]), **entries[image]})
    counts["dropped: in no split list"] = sum(1 for name in entries if name not in listed)

    split = seeded_split(
        records["train_val"], (1.0 - val_fraction, val_fraction, 0.0), seed=seed, group_key="patient_id"
    )
    training_all = split["training"]
    datalist = {
        "training": stratified_fraction(
            training_all, fraction, seed=seed, stratify_key=multilabel_stratum(training_all, min_count=min_stratum)
        ),
        "validation": split["validation"],
        "test": records["test"],  # the official test list; never subsampled
    }

    summary: dict[str, int | str] = {
        "dataset": "nih-cxr14",
        "root": str(root),
        "fraction": str(fraction),
        "seed": seed,
        "labels": ", ".join(NIH_14),
        f"images in {entry_file.name}": len(entries),
        f"images in {TRAIN_VAL_LIST}": len(lists["train_val"]),
        f"images in {TEST_LIST}": len(lists["test"]),
        "image files found": len(files),
        **dict(sorted((k, v) for k, v in counts.items() if v)),
        "training before fraction": len(training_all),
    }
    shared = {r["patient_id"] for r in records["train_val"]} & {r["patient_id"] for r in records["test"]}
    if shared:  # the official split is patient-wise; a hand-made list might not be
        summary["warning: patients in both train_val and test lists"] = len(shared)
    for name in SPLIT_NAMES:
        summary[f"kept: {name}"] = len(datalist[name])
        summary[f"kept: {name} patients"] = len({e["patient_id"] for e in datalist[name]})
    summary.update({f"training {k}": v for k, v in positives_per_label(datalist["training"], NIH_14).items()})
    return PreparedDatalist(datalist, summary)
