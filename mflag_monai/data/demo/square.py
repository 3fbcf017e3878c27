"""What the RSNA and SIIM demo sets share: 8-bit square Kaggle-style DICOM files, one patient per image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import STREAMS, Case, pick, stream_rng, subseed
from .dicom_writer import decimal_string, pixel_module

__all__ = ["SquareImage", "plan_square", "quota", "square_header"]


@dataclass
class SquareImage:
    """One image of the RSNA or SIIM sets (8-bit, square)."""

    image_id: str  # RSNA patientId / SIIM ImageId (= SOPInstanceUID)
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sex: str
    age: int
    seed: int
    case: Case
    label: str  # RSNA class or SIIM "positive"/"negative"


def plan_square(
    seed: int,
    stream: str,
    count: int,
    make_case: Callable[[np.random.Generator, int], tuple[Case, str]],
    uids: Callable[[np.random.Generator, int], tuple[str, ...]],
) -> list[SquareImage]:
    rng = stream_rng(seed, STREAMS[stream])
    items = []
    for i in range(count):
        case, label = make_case(rng, i)
        image_id, patient_id, study_uid, series_uid, sop_uid = uids(rng, i)
        items.append(
            SquareImage(
                image_id=image_id, patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
                sop_uid=sop_uid, sex=pick(rng, ["M", "F"]), age=int(rng.integers(18, 91)),
                seed=subseed(rng), case=case, label=label,
            )
        )  # fmt: skip
    return items


def quota(rng: np.random.Generator, count: int, fraction: float) -> np.ndarray:
    """A boolean array with exactly ``round(fraction * count)`` (at least 1) true, shuffled."""
    flags = np.zeros(count, dtype=bool)
    flags[: max(1, int(round(fraction * count)))] = True
    return rng.permutation(flags)


def square_header(item: SquareImage, size: int, spacing: float, description: str) -> dict[str, Any]:
    """Headers of the 8-bit Kaggle-style files (RSNA and SIIM look alike)."""
    return {
        "StudyDate": "19010101",
        "StudyTime": "000000.00",
        "AccessionNumber": "",
        "Modality": "CR",
        "ConversionType": "WSD",
        "ReferringPhysicianName": "",
        "SeriesDescription": description,
        "PatientName": item.patient_id,
        "PatientID": item.patient_id,
        "PatientBirthDate": "",
        "PatientSex": item.sex,
        "PatientAge": f"{item.age:03d}Y",
        "BodyPartExamined": "CHEST",
        "ViewPosition": item.case.projection,
        "StudyInstanceUID": item.study_uid,
        "SeriesInstanceUID": item.series_uid,
        "StudyID": "",
        "SeriesNumber": 1,
        "InstanceNumber": 1,
        "PatientOrientation": "",
        "PixelSpacing": [decimal_string(spacing), decimal_string(spacing)],
        **pixel_module(size, size, 8, "MONOCHROME2"),
    }
