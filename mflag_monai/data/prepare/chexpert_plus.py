"""CheXpert Plus (``df_chexpert_plus_240401.csv`` + PNG or DICOM images) → image–report datalist.

Format: docs/method.md#chexpert-plus.
"""

from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

from ...transforms.text import assemble_report
from .registry import PreparedDatalist, register_preparer
from .splits import SPLIT_NAMES, grouped_fraction
from .tables import read_csv_rows

__all__ = ["CHEXPERT_PLUS_SPLITS", "detect_chexpert_plus", "find_chexpert_plus_csv", "prepare_chexpert_plus"]

CSV_PATTERN = "df_chexpert_plus_*.csv"
REQUIRED_COLUMNS = (
    "path_to_image", "frontal_lateral", "deid_patient_id", "split", "section_findings", "section_impression",
)  # fmt: skip
#: CheXpert Plus split names → MONAI datalist keys (the release has train and valid).
CHEXPERT_PLUS_SPLITS = {"train": "training", "valid": "validation", "validate": "validation", "test": "test"}
_PROBE_ROWS = 200  # rows looked at to find the folder the relative paths start from


def find_chexpert_plus_csv(root: Path) -> Path:
    """``df_chexpert_plus_*.csv`` in ``root`` or one of its sub-folders (the newest release by name).

    Raises:
        FileNotFoundError: there is none.
    """
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        found = sorted(base.glob(CSV_PATTERN))
        if found:
            return found[-1]
    raise FileNotFoundError(
        f"no {CSV_PATTERN} in {root} or its sub-folders: --root must be the CheXpert Plus folder holding "
        "df_chexpert_plus_240401.csv and the PNG (or DICOM) images"
    )


def detect_chexpert_plus(root: Path) -> bool:
    """Whether ``root`` holds CheXpert Plus."""
    try:
        return Path(root).is_dir() and bool(find_chexpert_plus_csv(Path(root)))
    except FileNotFoundError:
        return False


def _candidates(rel: str, suffixes: tuple[str, ...]) -> list[str]:
    """The relative path as given and with each suffix (``path_to_image`` says ``.jpg``; the release has PNGs)."""
    path = PurePosixPath(rel.replace("\\", "/"))
    return [str(path)] + [str(path.with_suffix(s)) for s in suffixes if path.suffix.lower() != s]


def _find_base(root: Path, rels: list[str], suffixes: tuple[str, ...]) -> Path | None:
    """The folder most of the probed relative paths resolve under: ``root``, a sub-folder, or one below that
    (``PNG/``, ``PNG/PNG/``, ...). ``None`` when none of them does."""
    bases = [root]
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        bases.append(child)
        if child.name.lower() not in CHEXPERT_PLUS_SPLITS:  # not the (huge) split folders themselves
            bases.extend(sorted(p for p in child.iterdir() if p.is_dir() and p.name not in CHEXPERT_PLUS_SPLITS))
    probes = [r for r in rels if r][:_PROBE_ROWS]
    best, found = None, 0
    for base in bases:  # the first of equally good folders wins
        n = sum(any((base / c).is_file() for c in _candidates(r, suffixes)) for r in probes)
        if n > found:
            best, found = base, n
    return best


def _existing(base: Path | None, rel: str, suffixes: tuple[str, ...]) -> Path | None:
    """The file ``rel`` stands for under ``base`` (as given or with one of ``suffixes``), if there is one."""
    if base is None or not rel.strip():
        return None
    return next((base / c for c in _candidates(rel.strip(), suffixes) if (base / c).is_file()), None)


def _section_text(row: dict[str, str], counts: Counter) -> str:
    """Impression, then findings, from the section columns; from the report's own headers when both are empty."""
    impression = " ".join((row.get("section_impression") or "").split())
    findings = " ".join((row.get("section_findings") or "").split())
    text = " ".join(t for t in (impression, findings) if t)
    if not text and (row.get("report") or "").strip():
        text = assemble_report(row["report"])
        if text:
            counts["text from the report column (section columns empty)"] += 1
    return text


@register_preparer("chexpert-plus")
def prepare_chexpert_plus(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    **_: object,
) -> PreparedDatalist:
    """Pair each frontal CheXpert Plus image with its report (impression, then findings), in the official split.

    Args:
        root: the folder holding ``df_chexpert_plus_240401.csv`` (or a sub-folder holding it) and the images: PNG
            (the release's ``path_to_image`` ends in ``.jpg``; ``.png`` files at that path are found) or DICOM
            (``path_to_dcm``), under ``root`` or a folder below it (``PNG/``, ``DICOM/``...).
        out: unused (no files are written besides the datalist).
        fraction: share of the training *patients* kept, in ``(0, 1]``.
        seed: seed of the fraction draw.

    Returns:
        Entries ``{"image", "report", "patient_id", "study_id", "image_id", "view"}`` under ``training`` (``train``),
        ``validation`` (``valid``) and ``test`` (empty: the release has no test split).

    Raises:
        FileNotFoundError: no CSV, or no image of the CSV found under ``root``.
        ValueError: the CSV lacks a required column.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"CheXpert Plus root {root} is not a folder")
    csv_path = find_chexpert_plus_csv(root)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # whole reports in one cell
    rows = read_csv_rows(csv_path, REQUIRED_COLUMNS)
    png_base = _find_base(root, [r["path_to_image"] for r in rows], (".png", ".jpg"))
    dcm_base = _find_base(root, [r.get("path_to_dcm") or "" for r in rows], (".dcm",))
    if rows and png_base is None and dcm_base is None:
        raise FileNotFoundError(
            f"none of the first {_PROBE_ROWS} images of {csv_path.name} (e.g. {rows[0]['path_to_image']}) is under "
            f"{root} (as .png, .jpg or, from path_to_dcm, .dcm)"
        )

    counts: Counter[str] = Counter()
    datalist: dict[str, list[dict]] = {name: [] for name in SPLIT_NAMES}
    for row in rows:
        if row["frontal_lateral"].strip().lower() != "frontal":
            counts["dropped: lateral view"] += 1
            continue
        split = CHEXPERT_PLUS_SPLITS.get(row["split"].strip().lower())
        if split is None:
            counts[f"dropped: unknown split {row['split'].strip()!r}"] += 1
            continue
        text = _section_text(row, counts)
        if not text:
            counts["dropped: no impression and no findings"] += 1
            continue
        image = _existing(png_base, row["path_to_image"], (".png", ".jpg"))
        if image is None:
            image = _existing(dcm_base, row.get("path_to_dcm") or "", (".dcm",))
        if image is None:
            counts["dropped: image file missing"] += 1
            continue
        parts = PurePosixPath(row["path_to_image"].replace("\\", "/")).parts
        datalist[split].append(
            {
                "image": str(image),
                "report": text,
                "patient_id": row["deid_patient_id"].strip(),
                "study_id": "/".join(parts[-3:-1]) if len(parts) >= 3 else row["path_to_image"],
                "image_id": row["path_to_image"].strip(),
                "view": (row.get("ap_pa") or "").strip(),
            }
        )
    training_all = datalist["training"]
    datalist["training"] = grouped_fraction(training_all, fraction, seed=seed, group_key="patient_id")

    summary: dict[str, int | str] = {
        "dataset": "chexpert-plus",
        "root": str(root),
        "csv": str(csv_path),
        "png folder": str(png_base) if png_base else "none",
        "dicom folder": str(dcm_base) if dcm_base else "none",
        "rows": len(rows),
        "fraction": str(fraction),
        "seed": seed,
        **dict(sorted(counts.items())),
        "training before fraction": len(training_all),
    }
    shared = {e["patient_id"] for e in training_all} & {e["patient_id"] for e in datalist["validation"]}
    if shared:  # the official split is by patient; a re-packaged copy might not be
        summary["warning: patients in both train and valid"] = len(shared)
    for name in SPLIT_NAMES:
        summary[f"kept: {name}"] = len(datalist[name])
        summary[f"kept: {name} patients"] = len({e["patient_id"] for e in datalist[name]})
    return PreparedDatalist(datalist, summary)
