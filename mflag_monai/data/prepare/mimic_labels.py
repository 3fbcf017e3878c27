"""MIMIC-CXR images + ``mimic-cxr-2.0.0-chexpert.csv`` → 14-label classification datalist.

Format and labels: docs/method.md#mimic-cxr and docs/method.md#classification.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .labels import CHEXPERT_14, DEFAULT_MIN_STRATUM, chexpert_policy, multilabel_stratum, positives_per_label
from .mimic import (
    FRONTAL_VIEWS,
    METADATA_COLUMNS,
    MIMIC_SPLITS,
    SPLIT_COLUMNS,
    first_listing,
    read_mimic_table,
    study_dir,
)
from .registry import PreparedDatalist, register_preparer
from .splits import SPLIT_NAMES, stratified_fraction

__all__ = ["prepare_mimic_cxr_labels", "read_mimic_chexpert_labels"]

METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
LABELS_FILE = "mimic-cxr-2.0.0-chexpert.csv"


def read_mimic_chexpert_labels(rows: list[dict[str, str]]) -> dict[tuple[str, str], list[float]]:
    """``(subject_id, study_id)`` → 14 targets in :data:`CHEXPERT_14` order, with the CheXpert uncertainty policy.

    The CSV's columns are alphabetical; they are read by name. −1 → 1 for Atelectasis, Edema and Pleural Effusion,
    → 0 otherwise; blank → 0 (:func:`~mflag_monai.data.prepare.labels.chexpert_policy`).

    Raises:
        ValueError: when a label column is missing.
    """
    if rows:
        missing = [c for c in ("subject_id", "study_id", *CHEXPERT_14) if c not in rows[0]]
        if missing:
            raise ValueError(f"{LABELS_FILE}: missing columns {missing}")
    return {
        (row["subject_id"].strip(), row["study_id"].strip()): [chexpert_policy(n, row[n]) for n in CHEXPERT_14]
        for row in rows
    }


def _image_path(study_dir: Path, dicom_id: str, ext: str | None) -> Path:
    """The image file of ``dicom_id``: ``ext`` if given, else ``.dcm`` when present, else ``.jpg`` (MIMIC-CXR-JPG)."""
    if ext is not None:
        return study_dir / f"{dicom_id}{ext}"
    dcm = study_dir / f"{dicom_id}.dcm"
    return dcm if dcm.is_file() else study_dir / f"{dicom_id}.jpg"


@register_preparer("mimic-cxr-labels")
def prepare_mimic_cxr_labels(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    image_ext: str | None = None,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    **_: object,
) -> PreparedDatalist:
    """Turn MIMIC-CXR into a 14-label classification datalist with the official split.

    Steps: read the metadata, the official split file and ``mimic-cxr-2.0.0-chexpert.csv`` (plain or ``.gz``);
    keep frontal images (``ViewPosition`` PA or AP) whose file exists; give each its study's labels (the CheXpert
    uncertainty policy per label name); drop the images of studies without a label row (counted in images and in
    studies). The official split is honoured (``train`` / ``validate`` / ``test``; it is patient-wise). Then
    ``fraction`` of the training split is kept, stratified by label combination with rare combinations pooled by
    "any positive" (:func:`~mflag_monai.data.prepare.labels.multilabel_stratum`).

    Args:
        root: folder with the three ``mimic-cxr-2.0.0-*.csv`` files and ``files/``.
        out: unused (no files are written besides the datalist).
        fraction: share of the training split kept, in ``(0, 1]``.
        seed: seed of the fraction draw.
        image_ext: ``.dcm`` or ``.jpg``; looked up per image when ``None``.
        views: the ``ViewPosition`` values kept.
        min_stratum: label combinations with fewer training images are pooled in the fraction draw.

    Returns:
        Entries ``{"image": abs path, "label": [14 floats, CHEXPERT_14 order], "subject_id", "study_id"}``.
    """
    root = Path(root).expanduser().resolve()
    counts: Counter[str] = Counter()
    metadata = first_listing(read_mimic_table(root / METADATA_FILE, METADATA_COLUMNS), counts)
    splits = {row["dicom_id"].strip(): row["split"] for row in read_mimic_table(root / SPLIT_FILE, SPLIT_COLUMNS)}
    labels = read_mimic_chexpert_labels(read_mimic_table(root / LABELS_FILE, ("subject_id", "study_id", *CHEXPERT_14)))

    unlabelled_studies: set[tuple[str, str]] = set()
    split_records: dict[str, list[dict]] = {name: [] for name in SPLIT_NAMES}
    for row in metadata:
        if row.get("ViewPosition", "").strip().upper() not in views:
            counts["dropped: not a frontal view"] += 1
            continue
        subject, study, dicom_id = row["subject_id"].strip(), row["study_id"].strip(), row["dicom_id"].strip()
        split = MIMIC_SPLITS.get(splits.get(dicom_id, "").strip())
        if split is None:
            counts["dropped: not in the split file"] += 1
            continue
        if (subject, study) not in labels:
            counts[f"dropped: study without a row in {LABELS_FILE} (images)"] += 1
            unlabelled_studies.add((subject, study))
            continue
        image = _image_path(study_dir(root, subject, study), dicom_id, image_ext)
        if not image.is_file():
            counts["dropped: image file missing"] += 1
            continue
        split_records[split].append(
            {"image": str(image), "label": list(labels[(subject, study)]), "subject_id": subject, "study_id": study}
        )
    if unlabelled_studies:
        counts[f"dropped: study without a row in {LABELS_FILE} (studies)"] = len(unlabelled_studies)

    training_all = split_records["training"]
    datalist = {
        "training": stratified_fraction(
            training_all, fraction, seed=seed, stratify_key=multilabel_stratum(training_all, min_count=min_stratum)
        ),
        "validation": split_records["validation"],  # official; never subsampled
        "test": split_records["test"],
    }

    summary: dict[str, int | str] = {
        "dataset": "mimic-cxr-labels",
        "root": str(root),
        "fraction": str(fraction),
        "seed": seed,
        "labels": ", ".join(CHEXPERT_14),
        "images in metadata": len(metadata),
        f"studies in {LABELS_FILE}": len(labels),
        **dict(sorted(counts.items())),
        "training before fraction": len(training_all),
    }
    for name in SPLIT_NAMES:
        summary[f"kept: {name}"] = len(datalist[name])
        summary[f"kept: {name} subjects"] = len({e["subject_id"] for e in datalist[name]})
    summary.update({f"training {k}": v for k, v in positives_per_label(datalist["training"], CHEXPERT_14).items()})
    return PreparedDatalist(datalist, summary)
