"""The demo RSNA Pneumonia: DICOM images and ``stage_2_train_labels.csv`` (one row per opacity box) with
``stage_2_detailed_class_info.csv``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .common import (
    DATASET_DIRS,
    STREAMS,
    Case,
    render_frontal,
    sample_case,
    stream_rng,
    to_uint8,
    uid_2_25,
    uuid4,
    write_csv,
)
from .dicom_writer import CR_SOP_CLASS, save_dicom
from .square import SquareImage, plan_square, quota, square_header

__all__ = ["RSNA_LABEL_COLUMNS", "plan_rsna", "write_rsna"]


RSNA_LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


def plan_rsna(seed: int, count: int, image_size: int) -> list[SquareImage]:
    quota_rng = stream_rng(seed, STREAMS["rsna"], 0)
    positive = quota(quota_rng, count, 0.35)
    # About half of the positive images have two boxes (one per lung), as in the challenge.
    two_boxes = np.zeros(count, dtype=bool)
    two_boxes[np.flatnonzero(positive)] = quota(quota_rng, int(positive.sum()), 0.5)

    def make_case(rng: np.random.Generator, i: int) -> tuple[Case, str]:
        if positive[i]:
            case = sample_case(rng, {"cardiomegaly": 0.1, "effusion": 0.15, "devices": 0.1, "ap": 0.45})
            case.consolidation = 2 if two_boxes[i] else 1
            return case, "Lung Opacity"
        if rng.random() < 0.45:
            return sample_case(rng, {"ap": 0.3}), "Normal"
        # Abnormal without opacity: some other finding that the image shows.
        case = sample_case(rng, {"cardiomegaly": 0.5, "effusion": 0.3, "devices": 0.3, "pneumothorax": 0.1, "ap": 0.4})
        if case.consolidation or not (case.cardiomegaly or case.effusion or case.support_devices or case.pneumothorax):
            case.cardiomegaly, case.consolidation = True, 0
        return case, "No Lung Opacity / Not Normal"

    def uids(rng: np.random.Generator, i: int) -> tuple[str, ...]:
        pid = uuid4(rng)
        return pid, pid, uid_2_25(rng), uid_2_25(rng), uid_2_25(rng)

    return plan_square(seed, "rsna", count, make_case, uids)


def write_rsna(root: Path, plan: list[SquareImage], image_size: int, bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["rsna"]
    label_rows, class_rows = [], []
    counts: Counter = Counter()
    for item in plan:
        phantom = render_frontal(item.seed, image_size, image_size, item.case)
        header = square_header(item, image_size, 0.168 * 1024 / image_size, f"view: {item.case.projection}")
        save_dicom(out / "stage_2_train_images" / f"{item.image_id}.dcm", to_uint8(phantom.image), header,
                    CR_SOP_CLASS, item.sop_uid)  # fmt: skip
        if phantom.boxes:
            for x, y, w, h in phantom.boxes:  # one row per box, floats as in the real file
                label_rows.append([item.image_id, f"{x:.1f}", f"{y:.1f}", f"{w:.1f}", f"{h:.1f}", 1])
                class_rows.append([item.image_id, item.label])
        else:
            label_rows.append([item.image_id, "", "", "", "", 0])
            class_rows.append([item.image_id, item.label])
        counts[f"class: {item.label}"] += 1
        counts["boxes"] += len(phantom.boxes)
        counts["images"] += 1
        bar.update()
    write_csv(out / "stage_2_train_labels.csv", RSNA_LABEL_COLUMNS, label_rows)
    write_csv(out / "stage_2_detailed_class_info.csv", ("patientId", "class"), class_rows)
    return dict(sorted(counts.items()))
