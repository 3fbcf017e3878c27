"""MIMIC-CXR (DICOM or JPG) → image–report datalist for pre-training (docs/method.md#mimic-cxr)."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from ...transforms.text import mimic_report_text
from .registry import PreparedDatalist, register_preparer

__all__ = ["prepare_mimic_cxr", "FRONTAL_VIEWS", "MIMIC_SPLITS"]

FRONTAL_VIEWS = ("PA", "AP")
# MIMIC's split names → MONAI datalist keys
MIMIC_SPLITS = {"train": "training", "validate": "validation", "test": "test"}


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --root must be the MIMIC-CXR folder holding mimic-cxr-2.0.0-metadata.csv, "
            "mimic-cxr-2.0.0-split.csv and files/"
        )
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _study_dir(root: Path, subject: str, study: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"


@register_preparer("mimic-cxr")
def prepare_mimic_cxr(
    root: str | os.PathLike,
    reports_root: str | os.PathLike | None = None,
    image_ext: str | None = None,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    **_: object,
) -> PreparedDatalist:
    """Pair each frontal MIMIC-CXR image with its study's report (impression, then findings).

    Args:
        root: folder with ``mimic-cxr-2.0.0-metadata.csv``, ``mimic-cxr-2.0.0-split.csv`` and ``files/``.
        reports_root: folder whose ``files/p../p{subject}/s{study}.txt`` are the reports (default: ``root``;
            MIMIC-CXR-JPG users point it at the unpacked ``mimic-cxr-reports``).
        image_ext: ``.dcm`` or ``.jpg``; found by looking at the files when ``None``.
        views: the ``ViewPosition`` values kept.

    Returns:
        Datalist entries ``{"image", "report", "subject_id", "study_id", "dicom_id"}`` under ``training`` /
        ``validation`` / ``test``. Reports are sectioned as the official MIMIC-CXR parser does
        (:func:`~mflag_monai.transforms.text.mimic_report_text`); studies whose text comes out empty are dropped and
        counted by reason in the summary (``studies with empty text: ...``).
    """
    root = Path(root).expanduser().resolve()
    reports_root = Path(reports_root).expanduser().resolve() if reports_root else root
    metadata = _read_csv(root / "mimic-cxr-2.0.0-metadata.csv")
    splits = {row["dicom_id"]: row["split"] for row in _read_csv(root / "mimic-cxr-2.0.0-split.csv")}

    counts: Counter[str] = Counter()
    empty: Counter[str] = Counter()  # studies whose text is empty after sectioning, by reason
    reports: dict[tuple[str, str], str] = {}
    datalist: dict[str, list[dict]] = {key: [] for key in MIMIC_SPLITS.values()}
    for row in metadata:
        counts["images in metadata"] += 1
        if row.get("ViewPosition", "").strip().upper() not in views:
            counts["dropped: not a frontal view"] += 1
            continue
        subject, study, dicom_id = row["subject_id"], row["study_id"], row["dicom_id"]
        split = MIMIC_SPLITS.get(splits.get(dicom_id, ""))
        if split is None:
            counts["dropped: not in the split file"] += 1
            continue
        study_dir = _study_dir(root, subject, study)
        if image_ext is None:
            image_ext = ".dcm" if (study_dir / f"{dicom_id}.dcm").is_file() else ".jpg"
        image = study_dir / f"{dicom_id}{image_ext}"
        if not image.is_file():
            counts["dropped: image file missing"] += 1
            continue
        key = (subject, study)
        if key not in reports:
            report_file = _study_dir(reports_root, subject, study).with_suffix(".txt")
            if report_file.is_file():
                reports[key], why = mimic_report_text(report_file.read_text(errors="replace"), f"s{study}")
            else:
                reports[key], why = "", "no report file"
            if why:  # each study counted once, whatever its number of images
                empty[why] += 1
        if not reports[key]:
            counts["dropped: no impression and no findings"] += 1
            continue
        datalist[split].append(
            {
                "image": str(image),
                "report": reports[key],
                "subject_id": subject,
                "study_id": study,
                "dicom_id": dicom_id,
            }
        )
    summary: dict[str, int | str] = {"dataset": "mimic-cxr", "root": str(root), **dict(counts)}
    summary.update({f"studies with empty text: {why}": n for why, n in sorted(empty.items())})
    for split, entries in datalist.items():
        summary[f"kept: {split}"] = len(entries)
    summary["studies kept"] = len({(e["subject_id"], e["study_id"]) for v in datalist.values() for e in v})
    return PreparedDatalist(datalist, summary)
