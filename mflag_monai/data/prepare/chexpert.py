"""CheXpert (``train.csv`` / ``valid.csv`` + JPGs) → 5-label classification datalist.

Format and labels: docs/method.md#chexpert and docs/method.md#classification.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from .labels import (
    CHEXPERT_COMPETITION,
    DEFAULT_MIN_STRATUM,
    chexpert_policy,
    multilabel_stratum,
    parse_chexpert_value,
    positives_per_label,
)
from .registry import PreparedDatalist, register_preparer
from .splits import SPLIT_NAMES, seeded_split, stratified_fraction
from .tables import read_csv_rows

__all__ = ["prepare_chexpert", "read_chexpert_csv", "find_chexpert_csv_dir", "chexpert_patient_id"]

TRAIN_CSV, VALID_CSV = "train.csv", "valid.csv"
REQUIRED_COLUMNS = ("Path", "Frontal/Lateral")


def find_chexpert_csv_dir(root: Path) -> Path:
    """The folder holding ``train.csv`` and ``valid.csv``: ``root``, else one of its sub-folders, else its parent.

    The official zip unpacks to ``CheXpert-v1.0-small/{train.csv,valid.csv,train/,valid/}``, so ``--root`` may be that
    folder or its parent; some copies move the CSVs up into the parent (the demo data does).
    """
    if (root / TRAIN_CSV).is_file():
        return root
    if root.is_dir():
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            if (child / TRAIN_CSV).is_file():
                return child
    if (root.parent / TRAIN_CSV).is_file():  # --root is the dataset folder and the CSVs sit beside it
        return root.parent
    raise FileNotFoundError(
        f"{TRAIN_CSV} not found in {root} or its sub-folders: --root must be the CheXpert-v1.0-small folder "
        "(or the folder containing it)"
    )


def chexpert_patient_id(path: str) -> str:
    """The patient of a ``Path`` value: its ``patientNNNNN`` component (else the folder two levels up)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    for part in parts:
        if part.startswith("patient"):
            return part
    return parts[-3] if len(parts) >= 3 else parts[0]


def _image_base(paths: list[str], candidates: list[Path]) -> Path:
    """The folder the CSV's relative ``Path`` values start from: the first candidate holding their first component.

    The official paths start with ``CheXpert-v1.0-small/``, i.e. they are relative to the folder *containing* the
    dataset folder, wherever the CSVs were found.
    """
    heads = Counter(PurePosixPath(p).parts[0] for p in paths if p)
    if heads:
        head = heads.most_common(1)[0][0]
        for base in candidates:
            if (base / head).is_dir():
                return base
    return candidates[0]


def read_chexpert_csv(path: Path, names: list[str] = CHEXPERT_COMPETITION) -> list[dict[str, Any]]:
    """Read a CheXpert CSV: one ``{"path", "view", "patient_id", "raw"}`` per row, ``raw`` the label cells of ``names``.

    Raises:
        InputError: the file is missing, or a required column or a label column is missing (or repeated).
    """
    rows = read_csv_rows(
        path, (*REQUIRED_COLUMNS, *names), hint=f"CheXpert ships {TRAIN_CSV} and {VALID_CSV} side by side"
    )
    return [
        {
            "path": row["Path"].strip(),
            "view": row["Frontal/Lateral"].strip(),
            "patient_id": chexpert_patient_id(row["Path"].strip()),
            "raw": [row[n] for n in names],
        }
        for row in rows
        if row["Path"].strip()
    ]


@register_preparer("chexpert")
def prepare_chexpert(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    val_fraction: float = 0.1,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    **_: object,
) -> PreparedDatalist:
    """Turn CheXpert into a classification datalist over the 5 competition labels.

    Steps: read ``train.csv`` and ``valid.csv``; keep frontal images (``Frontal/Lateral == Frontal``) whose file
    exists; map the labels with :func:`~mflag_monai.data.prepare.labels.chexpert_policy` (−1 → 1 for Atelectasis, Edema,
    Pleural Effusion, → 0 for the others; blank → 0). ``valid.csv`` becomes the **test** split (the official test
    labels are hidden). Validation is a seeded ``val_fraction`` of ``train.csv``'s patients (grouped, so a patient
    is in one split only; not stratified: a random 10% of tens of thousands of patients is representative, while
    label strata of a few patients would round to no validation patient at all). Then ``fraction`` of the training
    split is kept, stratified by label combination, rare combinations pooled by "any positive"
    (:func:`~mflag_monai.data.prepare.labels.multilabel_stratum`).

    Args:
        root: the ``CheXpert-v1.0-small`` folder or the folder containing it (``Path`` values are relative to the
            latter); the CSVs may be in either.
        out: unused (no files are written besides the datalist).
        fraction: share of the training split kept, in ``(0, 1]``.
        seed: seed of the validation split and of the fraction draw.
        val_fraction: share of ``train.csv``'s patients put in validation.
        min_stratum: label combinations with fewer training images are pooled in the fraction draw.

    Returns:
        Entries ``{"image": abs JPG path, "label": [5 floats, CHEXPERT_COMPETITION order], "patient_id"}``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root).expanduser().resolve()
    csv_dir = find_chexpert_csv_dir(root)
    tables = {name: read_chexpert_csv(csv_dir / name) for name in (TRAIN_CSV, VALID_CSV)}
    base = _image_base(
        [row["path"] for rows in tables.values() for row in rows], [root, csv_dir, csv_dir.parent, root.parent]
    )

    counts: Counter[str] = Counter()
    records: dict[str, list[dict]] = {}
    for name, rows in tables.items():
        records[name] = []
        for row in rows:
            if row["view"].lower() != "frontal":
                counts["dropped: lateral view"] += 1
                continue
            image = base / row["path"]
            if not image.is_file():
                counts["dropped: image file missing"] += 1
                continue
            label = [chexpert_policy(n, cell) for n, cell in zip(CHEXPERT_COMPETITION, row["raw"])]
            for target, cell in zip(label, row["raw"]):
                if parse_chexpert_value(cell) == -1.0:
                    counts[f"uncertain labels -> {target:.0f}"] += 1
            records[name].append({"image": str(image), "label": label, "patient_id": row["patient_id"]})

    split = seeded_split(records[TRAIN_CSV], (1.0 - val_fraction, val_fraction, 0.0), seed=seed, group_key="patient_id")
    training_all = split["training"]
    datalist = {
        "training": stratified_fraction(
            training_all, fraction, seed=seed, stratify_key=multilabel_stratum(training_all, min_count=min_stratum)
        ),
        "validation": split["validation"],
        "test": records[VALID_CSV],  # valid.csv is the test split; never subsampled
    }

    train_patients = {r["patient_id"] for r in records[TRAIN_CSV]}
    summary: dict[str, int | str] = {
        "dataset": "chexpert",
        "root": str(root),
        "csv folder": str(csv_dir),
        "image base": str(base),
        "fraction": str(fraction),
        "seed": seed,
        "labels": ", ".join(CHEXPERT_COMPETITION),
        f"rows in {TRAIN_CSV}": len(tables[TRAIN_CSV]),
        f"rows in {VALID_CSV} (test)": len(tables[VALID_CSV]),
        **dict(sorted(counts.items())),
        "training before fraction": len(training_all),
    }
    shared = train_patients & {r["patient_id"] for r in records[VALID_CSV]}
    if shared:  # the official files have none; a re-packaged copy might
        summary["warning: patients in both train.csv and valid.csv"] = len(shared)
    for name in SPLIT_NAMES:
        summary[f"kept: {name}"] = len(datalist[name])
        summary[f"kept: {name} patients"] = len({e["patient_id"] for e in datalist[name]})
    positives = positives_per_label(datalist["training"], CHEXPERT_COMPETITION)
    summary.update({f"training {k}": v for k, v in positives.items()})
    return PreparedDatalist(datalist, summary)
