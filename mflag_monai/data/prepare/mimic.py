"""MIMIC-CXR (DICOM or JPG) → image–report datalist for pre-training (docs/method.md#mimic-cxr)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ...transforms.text import mimic_report_text
from .registry import PreparedDatalist, register_preparer
from .tables import read_csv_rows

__all__ = ["prepare_mimic_cxr", "FRONTAL_VIEWS", "MIMIC_SPLITS"]

FRONTAL_VIEWS = ("PA", "AP")
# MIMIC's split names → MONAI datalist keys
MIMIC_SPLITS = {"train": "training", "validate": "validation", "test": "test"}


METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
SPLIT_COLUMNS = ("dicom_id", "split")


def read_mimic_table(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """A MIMIC-CXR CSV (or the ``.csv.gz`` PhysioNet ships) with its ``required`` columns checked."""
    if not path.is_file() and path.with_name(path.name + ".gz").is_file():
        path = path.with_name(path.name + ".gz")
    return read_csv_rows(
        path,
        required,
        hint="--root must be the MIMIC-CXR folder holding mimic-cxr-2.0.0-metadata.csv, mimic-cxr-2.0.0-split.csv "
        "and files/",
    )


def first_listing(rows: list[dict[str, str]], counts: Counter) -> list[dict[str, str]]:
    """The metadata rows with each ``dicom_id`` once (the first listing): an image listed twice would be trained on
    twice. Dropped repeats are counted in ``counts``."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        dicom_id = row["dicom_id"].strip()
        if dicom_id in seen:
            counts["dropped: dicom_id listed twice in the metadata"] += 1
            continue
        seen.add(dicom_id)
        kept.append(row)
    return kept


def study_dir(root: Path, subject: str, study: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"


@register_preparer("mimic-cxr")
def prepare_mimic_cxr(
    root: str | os.PathLike,
    reports_root: str | os.PathLike | None = None,
    image_ext: str | None = None,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    report_separator: str = " ",
    **_: object,
) -> PreparedDatalist:
    """Pair each frontal MIMIC-CXR image with its study's report (impression, then findings, joined by
    ``report_separator``: a space by default, nothing in the authors' code).

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
    counts: Counter[str] = Counter()
    metadata = first_listing(read_mimic_table(root / "mimic-cxr-2.0.0-metadata.csv", METADATA_COLUMNS), counts)
    split_rows = read_mimic_table(root / "mimic-cxr-2.0.0-split.csv", SPLIT_COLUMNS)
    splits = {row["dicom_id"].strip(): row["split"].strip() for row in split_rows}

    empty: Counter[str] = Counter()  # studies whose text is empty after sectioning, by reason
    reports: dict[tuple[str, str], str] = {}
    datalist: dict[str, list[dict]] = {key: [] for key in MIMIC_SPLITS.values()}
    counts["images in metadata"] = len(metadata) + counts["dropped: dicom_id listed twice in the metadata"]
    for row in metadata:
        if row.get("ViewPosition", "").strip().upper() not in views:
            counts["dropped: not a frontal view"] += 1
            continue
        subject, study, dicom_id = row["subject_id"].strip(), row["study_id"].strip(), row["dicom_id"].strip()
        split = MIMIC_SPLITS.get(splits.get(dicom_id, ""))
        if split is None:
            counts["dropped: not in the split file"] += 1
            continue
        folder = study_dir(root, subject, study)
        if image_ext is None:
            image_ext = ".dcm" if (folder / f"{dicom_id}.dcm").is_file() else ".jpg"
        image = folder / f"{dicom_id}{image_ext}"
        if not image.is_file():
            counts["dropped: image file missing"] += 1
            continue
        key = (subject, study)
        if key not in reports:
            report_file = study_dir(reports_root, subject, study).with_suffix(".txt")
            if report_file.is_file():
                reports[key], why = mimic_report_text(
                    report_file.read_text(errors="replace"), f"s{study}", separator=report_separator
                )
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
