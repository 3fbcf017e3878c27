"""The demo MIMIC-CXR: studies planned from the seed, then written as DICOM files, free-text reports and the
release's three CSVs (metadata, split, CheXpert labels)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .common import (
    DATASET_DIRS,
    STREAMS,
    Case,
    fmt_label,
    pick,
    render_frontal,
    render_lateral,
    sample_case,
    stream_rng,
    subseed,
    uid_2_25,
    write_csv,
)
from .dicom_writer import CR_SOP_CLASS, DX_SOP_CLASS, decimal_string, pixel_module, save_dicom
from .reports import MIMIC_LABELS, format_report, merge_labels, report_sentences

__all__ = ["MIMIC_METADATA_COLUMNS", "plan_mimic", "write_mimic"]


MIMIC_METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
)  # fmt: skip


def _sizes(image_size: int) -> list[tuple[int, int]]:
    """(rows, columns) choices around ``image_size``: square, taller, narrower (even sides)."""
    s = image_size
    even = lambda x: int(round(x / 2)) * 2  # noqa: E731
    return [(s, s), (even(1.1 * s), s), (s, even(0.9 * s))]


@dataclass
class _MimicImage:
    dicom_id: str
    view: str  # ViewPosition: PA, AP, LL or LATERAL
    rows: int
    cols: int
    seed: int
    modality: str  # CR or DX
    photometric: str
    slope: int
    intercept: int
    has_window: bool
    sop_uid: str
    series_uid: str


@dataclass
class _MimicStudy:
    subject_id: int
    study_id: int
    split: str
    sex: str
    age: int
    date: str
    time: str
    study_uid: str
    case: Case
    report_kind: str  # "both", "findings", "impression" or "none"
    report_seed: int
    images: list[_MimicImage] = field(default_factory=list)


_VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LL": "left lateral", "LATERAL": "lateral"}
_MIMIC_P = {"cardiomegaly": 0.2, "effusion": 0.2, "consolidation": 0.18, "nodule": 0.08, "pneumothorax": 0.08,
            "devices": 0.15, "ap": 0.3, "hedge": 0.25}  # fmt: skip


def plan_mimic(seed: int, num_studies: int, image_size: int) -> list[_MimicStudy]:
    """Every MIMIC-CXR decision (ids, views, findings, headers), without rendering."""
    rng = stream_rng(seed, STREAMS["mimic"])
    n = num_studies
    n_subjects = max(3, int(round(n * 0.7)))
    subjects = 10_000_000 + np.sort(rng.choice(9_999_999, size=n_subjects, replace=False))
    # Every subject gets a study; the rest go to random subjects (follow-up studies).
    owners = np.sort(np.concatenate([np.arange(n_subjects), rng.integers(0, n_subjects, n - n_subjects)]))
    study_ids = 50_000_000 + rng.choice(9_999_999, size=n, replace=False)
    order = rng.permutation(n_subjects)
    n_val = max(1, int(round(0.1 * n_subjects)))
    split_of = {}
    for rank, s in enumerate(order):
        split_of[int(s)] = "validate" if rank < n_val else "test" if rank < 2 * n_val else "train"
    sex_of = {int(s): pick(rng, ["M", "F"]) for s in range(n_subjects)}
    age_of = {int(s): int(rng.integers(20, 91)) for s in range(n_subjects)}
    # Fixed quotas so even a tiny demo has each kind.
    kinds = np.array(["both"] * n, dtype=object)
    special = rng.permutation(n)
    n_none, n_imp, n_find = max(1, round(0.03 * n)), max(1, round(0.08 * n)), max(1, round(0.07 * n))
    kinds[special[:n_none]] = "none"
    kinds[special[n_none : n_none + n_imp]] = "impression"
    kinds[special[n_none + n_imp : n_none + n_imp + n_find]] = "findings"
    has_lateral = np.zeros(n, dtype=bool)
    has_lateral[rng.permutation(n)[: max(1, round(0.15 * n))]] = True
    sizes = _sizes(image_size)

    studies = []
    for i in range(n):
        subj = int(owners[i])
        case = sample_case(rng, _MIMIC_P)
        year, month, day = int(rng.integers(2110, 2211)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        hh, mm, ss, ms = (int(rng.integers(0, k)) for k in (24, 60, 60, 1000))
        study = _MimicStudy(
            subject_id=int(subjects[subj]),
            study_id=int(study_ids[i]),
            split=split_of[subj],
            sex=sex_of[subj],
            age=age_of[subj],
            date=f"{year:04d}{month:02d}{day:02d}",
            time=f"{hh:02d}{mm:02d}{ss:02d}.{ms:03d}",
            study_uid=uid_2_25(rng),
            case=case,
            report_kind=str(kinds[i]),
            report_seed=subseed(rng),
        )
        views = [case.projection] + ([pick(rng, ["LL", "LATERAL"])] if has_lateral[i] else [])
        for view in views:
            rows, cols = pick(rng, sizes, [0.5, 0.3, 0.2])
            modality = pick(rng, ["CR", "DX"])
            study.images.append(
                _MimicImage(
                    dicom_id="-".join(rng.bytes(20).hex()[k : k + 8] for k in range(0, 40, 8)),
                    view=view,
                    rows=rows,
                    cols=cols,
                    seed=subseed(rng),
                    modality=modality,
                    photometric="MONOCHROME1" if rng.random() < 0.3 else "MONOCHROME2",
                    slope=pick(rng, [1, 2], [0.7, 0.3]),
                    intercept=pick(rng, [0, -1024], [0.7, 0.3]),
                    has_window=bool(rng.random() < 0.85),
                    sop_uid=uid_2_25(rng),
                    series_uid=uid_2_25(rng),
                )
            )
        studies.append(study)
    studies.sort(key=lambda s: (s.subject_id, s.study_id))
    return studies


def _mimic_stored(image: np.ndarray, img: _MimicImage) -> tuple[np.ndarray, dict[str, Any]]:
    """12-bit stored values of a phantom image and the header that makes them display right.

    MONOCHROME2: stored grows with density. MONOCHROME1: stored = 4095 - that, so the file
    viewed with MONOCHROME1 semantics (high = dark) is the phantom again.
    """
    rng = np.random.default_rng(img.seed + 1)  # a separate stream from the render's
    lo, hi = int(rng.integers(80, 500)), int(rng.integers(3300, 4096))
    stored = np.round(lo + image * (hi - lo)).astype(np.uint16)
    if img.photometric == "MONOCHROME1":
        stored = (4095 - stored).astype(np.uint16)
    header: dict[str, Any] = {
        "RescaleIntercept": str(img.intercept),
        "RescaleSlope": str(img.slope),
        "RescaleType": "US",
    }
    if img.has_window:
        # Cover the useful range (0.5-99.5 percentiles) of the modality values.
        p_lo, p_hi = np.percentile(stored, [0.5, 99.5])
        m_lo, m_hi = img.slope * p_lo + img.intercept, img.slope * p_hi + img.intercept
        header["WindowCenter"] = decimal_string(round((m_lo + m_hi) / 2))
        header["WindowWidth"] = decimal_string(max(round((m_hi - m_lo) * 1.05), 2))
        header["WindowCenterWidthExplanation"] = "NORMAL"
    return stored, header


def write_mimic(root: Path, plan: list[_MimicStudy], bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["mimic"]
    meta_rows, split_rows, label_rows = [], [], []
    counts: Counter = Counter()
    for study in plan:
        sdir = out / "files" / f"p{str(study.subject_id)[:2]}" / f"p{study.subject_id}"
        rng = np.random.default_rng(study.report_seed)
        frontal = study.images[0]
        phantom = render_frontal(frontal.seed, frontal.rows, frontal.cols, study.case)
        lateral = len(study.images) > 1
        exam = "CHEST (PORTABLE AP)" if frontal.view == "AP" else "CHEST (PA AND LAT)" if lateral else "CHEST (PA)"

        # Report and labels from the same sentences.
        found, imp = report_sentences(rng, phantom.findings, phantom.ctr, study.case.hedge)
        kind = study.report_kind
        used = (found if kind in ("both", "findings") else []) + (imp if kind in ("both", "impression") else [])
        text = format_report(
            rng,
            exam,
            study.sex,
            [s for s, _ in found] if kind in ("both", "findings") else None,
            [s for s, _ in imp] if kind in ("both", "impression") else None,
            extra_sections=kind == "none" or rng.random() < 0.1,
        )
        sdir.mkdir(parents=True, exist_ok=True)
        (sdir / f"s{study.study_id}.txt").write_text(text)
        labels = merge_labels(used) if used else dict.fromkeys(MIMIC_LABELS)
        label_rows.append([study.subject_id, study.study_id, *(fmt_label(labels[k]) for k in MIMIC_LABELS)])
        counts[f"reports: {kind}"] += 1
        for k in MIMIC_LABELS:
            if labels[k] == 1.0:
                counts[f"label {k} = 1"] += 1
            elif labels[k] == -1.0:
                counts[f"label {k} = -1"] += 1

        for img in study.images:
            pixels = phantom.image if img is frontal else render_lateral(img.seed, img.rows, img.cols)
            stored, header = _mimic_stored(pixels, img)
            view_meaning = _VIEW_MEANING[img.view]
            orientation = "Recumbent" if img.view == "AP" else "Erect"
            spacing = decimal_string(430.0 / max(img.rows, img.cols))
            header.update(
                {
                    "ImageType": ["ORIGINAL", "PRIMARY"],
                    "StudyDate": study.date,
                    "SeriesDate": study.date,
                    "StudyTime": study.time,
                    "AccessionNumber": "",
                    "Modality": img.modality,
                    "Manufacturer": "MFLAG DEMO",
                    "PatientName": "___",
                    "PatientID": str(study.subject_id),
                    "PatientBirthDate": "",
                    "PatientSex": study.sex,
                    "PatientAge": f"{study.age:03d}Y",
                    "BodyPartExamined": "CHEST",
                    "ViewPosition": img.view,
                    "StudyInstanceUID": study.study_uid,
                    "SeriesInstanceUID": img.series_uid,
                    "StudyID": str(study.study_id),
                    "SeriesNumber": study.images.index(img) + 1,
                    "InstanceNumber": 1,
                    "PatientOrientation": ["P", "F"] if img.view in ("LL", "LATERAL") else ["L", "F"],
                    "PixelSpacing": [spacing, spacing],
                    "ImagerPixelSpacing": [spacing, spacing],
                    **pixel_module(img.rows, img.cols, 12, img.photometric),
                }
            )
            sop_class = CR_SOP_CLASS if img.modality == "CR" else DX_SOP_CLASS
            save_dicom(sdir / f"s{study.study_id}" / f"{img.dicom_id}.dcm", stored, header, sop_class, img.sop_uid)
            meta_rows.append([
                img.dicom_id, study.subject_id, study.study_id, exam, img.view, img.rows, img.cols,
                study.date, f"{float(study.time):.3f}", exam, view_meaning, orientation,
            ])  # fmt: skip
            split_rows.append([img.dicom_id, study.study_id, study.subject_id, study.split])
            counts[f"images: {img.view}"] += 1
            counts[f"images: {img.photometric}"] += 1
            bar.update()
        counts[f"studies: {study.split}"] += 1

    write_csv(out / "mimic-cxr-2.0.0-metadata.csv", MIMIC_METADATA_COLUMNS, meta_rows)
    write_csv(out / "mimic-cxr-2.0.0-split.csv", ("dicom_id", "study_id", "subject_id", "split"), split_rows)
    write_csv(out / "mimic-cxr-2.0.0-chexpert.csv", ("subject_id", "study_id", *MIMIC_LABELS), label_rows)
    return {"studies": len(plan), **dict(sorted(counts.items()))}
