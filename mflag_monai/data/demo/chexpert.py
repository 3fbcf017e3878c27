"""The demo CheXpert-v1.0-small: JPG images and ``train.csv`` / ``valid.csv`` with labels read from a report of
what each frontal image shows (the validation labels as radiologist consensus, 0 or 1)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
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
    to_uint8,
    write_csv,
)
from .reports import merge_labels, report_sentences

__all__ = ["CHEXPERT_COLUMNS", "CHEXPERT_LABELS", "plan_chexpert", "write_chexpert"]


#: The same labels in CheXpert's ``train.csv`` / ``valid.csv`` column order.
CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)  # fmt: skip


CHEXPERT_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS)


@dataclass
class _ChexpertImage:
    path: str  # relative to the chexpert root
    split: str  # train or valid
    sex: str
    age: int
    view: str  # Frontal or Lateral
    projection: str  # AP or PA
    rows: int
    cols: int
    seed: int
    case: Case
    label_seed: int


_CHEXPERT_P = {"cardiomegaly": 0.25, "effusion": 0.25, "consolidation": 0.2, "nodule": 0.08, "pneumothorax": 0.1,
               "devices": 0.3, "ap": 0.5, "hedge": 0.3}  # fmt: skip


def plan_chexpert(seed: int, train: int, valid: int, image_size: int) -> list[_ChexpertImage]:
    rng = stream_rng(seed, STREAMS["chexpert"])
    sizes = [(image_size, image_size), (image_size, int(round(image_size * 1.2 / 2)) * 2),
             (int(round(image_size * 1.2 / 2)) * 2, image_size)]  # fmt: skip
    images: list[_ChexpertImage] = []
    targets = {"train": train, "valid": valid}
    first_patient = {"train": 1, "valid": 64541}  # CheXpert's valid patients start there
    for split, target in targets.items():
        made, patient = 0, first_patient[split]
        while made < target:
            sex, age = pick(rng, ["Female", "Male"]), int(rng.integers(18, 91))
            for study in range(1, int(rng.integers(1, 4)) + 1):
                if made >= target:
                    break
                case = sample_case(rng, _CHEXPERT_P)
                case.hedge = case.hedge and split == "train"  # valid labels are consensus 0/1
                label_seed = subseed(rng)
                views = ["Frontal"] + (["Lateral"] if rng.random() < 0.12 else [])
                for k, view in enumerate(views, 1):
                    rows, cols = pick(rng, sizes, [0.4, 0.4, 0.2])
                    name = f"view{k}_{view.lower()}.jpg"
                    images.append(
                        _ChexpertImage(
                            path=f"CheXpert-v1.0-small/{split}/patient{patient:05d}/study{study}/{name}",
                            split=split, sex=sex, age=age, view=view, projection=case.projection,
                            rows=rows, cols=cols, seed=subseed(rng), case=case, label_seed=label_seed,
                        )
                    )  # fmt: skip
                    made += 1
            patient += 1
    return images


def write_chexpert(root: Path, plan: list[_ChexpertImage], bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["chexpert"]
    rows: dict[str, list[list[Any]]] = {"train": [], "valid": []}
    counts: Counter = Counter()
    study_labels: dict[str, dict[str, float | None]] = {}
    for item in plan:
        study_dir = item.path.rsplit("/", 1)[0]
        if item.view == "Frontal":
            phantom = render_frontal(item.seed, item.rows, item.cols, item.case)
            pixels = phantom.image
            # CheXpert labels come from the report: build one, keep only its labels.
            label_rng = np.random.default_rng(item.label_seed)
            found, imp = report_sentences(label_rng, phantom.findings, phantom.ctr, item.case.hedge)
            labels = merge_labels(found + imp)
            if item.split == "valid":  # radiologist consensus: every label 0 or 1
                labels = {k: 1.0 if v in (1.0, -1.0) else 0.0 for k, v in labels.items()}
            study_labels[study_dir] = labels
        else:
            pixels = render_lateral(item.seed, item.rows, item.cols)
            labels = study_labels[study_dir]  # the lateral shares its study's labels
        path = out / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(pixels), mode="L").save(path, format="JPEG", quality=90)
        rows[item.split].append([
            item.path, item.sex, item.age, item.view, item.projection if item.view == "Frontal" else "",
            *(fmt_label(labels[k]) for k in CHEXPERT_LABELS),
        ])  # fmt: skip
        counts[f"{item.split} images"] += 1
        counts[f"{item.split} {item.view.lower()}"] += 1
        for k in CHEXPERT_LABELS:
            if labels[k] == 1.0:
                counts[f"{item.split} label {k} = 1"] += 1
            elif labels[k] == -1.0:
                counts[f"{item.split} label {k} = -1"] += 1
        bar.update()
    write_csv(out / "train.csv", CHEXPERT_COLUMNS, rows["train"])
    write_csv(out / "valid.csv", CHEXPERT_COLUMNS, rows["valid"])
    return dict(sorted(counts.items()))
