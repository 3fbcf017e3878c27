"""RSNA Pneumonia (``stage_2_train_labels.csv`` + ``stage_2_train_images/``) → classification, segmentation or
detection datalists (format: docs/method.md#rsna-pneumonia; protocols: docs/method.md#downstream-protocols)."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import numpy as np

from .registry import PreparedDatalist, register_preparer
from .splits import SPLIT_NAMES, dicom_size, resolve_masks_dir, seeded_split, stratified_fraction, write_mask_png
from .tables import read_csv_rows

__all__ = ["prepare_rsna", "read_rsna_labels", "boxes_to_mask", "RSNA_TASKS"]

LABELS_FILE = "stage_2_train_labels.csv"
IMAGES_DIR = "stage_2_train_images"
#: The tasks ``prepare_rsna`` serves.
RSNA_TASKS: tuple[str, ...] = ("classification", "segmentation", "detection")

Box = tuple[float, float, float, float]  # x, y, width, height in pixels, as the CSV writes them


def read_rsna_labels(path: str | os.PathLike, counts: Counter | None = None) -> dict[str, tuple[int, list[Box]]]:
    """Read ``stage_2_train_labels.csv``: patientId → (Target, boxes ``(x, y, width, height)``), in file order.

    The file has one row per box; a negative image has one row with blank box fields and Target 0. An image's
    Target is the largest of its rows'. A box with a width or height that is not a positive number is dropped and
    counted in ``counts`` (it would otherwise be written as given, or turn into an empty mask).

    Raises:
        InputError: the file is missing, or a column is missing (or repeated).
    """
    counts = Counter() if counts is None else counts
    labels: dict[str, tuple[int, list[Box]]] = {}
    table = read_csv_rows(
        path,
        ("patientId", "x", "y", "width", "height", "Target"),
        skipinitialspace=True,
        hint=f"--root must be the RSNA folder holding {LABELS_FILE} and {IMAGES_DIR}/",
    )
    for row in table:
        pid = row["patientId"].strip()
        if not pid:
            continue
        target, boxes = labels.get(pid, (0, []))
        target = max(target, int(float(row["Target"])))
        if row["x"].strip():
            box = tuple(float(row[k]) for k in ("x", "y", "width", "height"))
            if not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
                counts["dropped boxes: width or height not a positive number"] += 1
            else:
                boxes.append(box)  # type: ignore[arg-type]
        labels[pid] = (target, boxes)
    return labels


def boxes_to_mask(boxes: list[Box], rows: int, columns: int) -> np.ndarray:
    """Fill ``(x, y, width, height)`` boxes into a ``(rows, columns)`` uint8 0/1 mask.

    A box covers rows ``y .. y+height-1`` and columns ``x .. x+width-1``; fractional edges are rounded (half up) and
    the box is clipped to the image.
    """
    mask = np.zeros((rows, columns), dtype=np.uint8)
    for x, y, w, h in boxes:
        x0, y0 = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        x1, y1 = int(np.floor(x + w + 0.5)), int(np.floor(y + h + 0.5))
        mask[max(y0, 0) : max(min(y1, rows), 0), max(x0, 0) : max(min(x1, columns), 0)] = 1
    return mask


@register_preparer("rsna-pneumonia")
def prepare_rsna(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    task: str = "classification",
    masks_dir: str | os.PathLike | None = None,
    **_: object,
) -> PreparedDatalist:
    """Turn RSNA Pneumonia into a datalist for one task.

    Images without a DICOM file are dropped; the rest are split 70/15/15 at random with ``seed``, stratified by
    Target, grouped by patientId. The split depends only on the labels, the files present and the seed, not on
    ``task``: the three tasks share the same test images. Then ``fraction`` of the training split is kept,
    stratified by Target.

    Args:
        root: the RSNA folder with ``stage_2_train_labels.csv`` and ``stage_2_train_images/{patientId}.dcm``.
        out: the datalist path being written; segmentation masks default to ``<out stem>_masks`` beside it.
        fraction: share of the training split kept.
        seed: seed of the split and of the fraction draw.
        task: one of :data:`RSNA_TASKS`:

            - ``classification``: ``{"image", "label": [0|1], "patient_id"}``;
            - ``segmentation``: ``{"image", "label": abs mask .png path, "patient_id", "positive": 0|1}``, the
              boxes filled into ``<masks_dir>/<patientId>.png`` (8-bit, 0/255, the DICOM's size; reused if present);
            - ``detection``: ``{"image", "boxes": [[x1, y1, x2, y2], ...], "labels": [0, ...], "patient_id"}``,
              float pixel coordinates of the original image (``x2 = x + width``), empty lists for negatives.
        masks_dir: folder of the masks (segmentation only; overrides the default beside ``out``).

    Raises:
        ValueError: for an unknown ``task``, or segmentation without ``out`` or ``masks_dir``.
    """
    if task not in RSNA_TASKS:
        raise ValueError(f"Unknown RSNA task {task!r}; choose one of: {', '.join(RSNA_TASKS)}")
    root = Path(root).expanduser().resolve()
    masks = resolve_masks_dir(out, masks_dir) if task == "segmentation" else None
    counts: Counter[str] = Counter()
    labels = read_rsna_labels(root / LABELS_FILE, counts)
    images = root / IMAGES_DIR
    if not images.is_dir():
        raise FileNotFoundError(f"{images} not found: the RSNA images must be in {IMAGES_DIR}/ under --root")

    records = []
    for pid, (target, boxes) in labels.items():
        if target and not boxes:
            if task != "classification":  # its boxes are what these tasks learn: without one it would be a negative
                counts["dropped: positive (Target 1) without a usable box"] += 1
                continue
            counts["positive images without a box"] += 1
        image = images / f"{pid}.dcm"
        if not image.is_file():
            counts["dropped: no DICOM file"] += 1
            continue
        records.append({"image": str(image), "patient_id": pid, "target": target})

    split = seeded_split(records, seed=seed, group_key="patient_id", stratify_key="target")
    split["training"] = stratified_fraction(split["training"], fraction, seed=seed, stratify_key="target")

    datalist: dict[str, list[dict]] = {}
    for name in SPLIT_NAMES:
        datalist[name] = []
        for record in split[name]:
            image, pid, target = record["image"], record["patient_id"], record["target"]
            boxes = labels[pid][1]
            if task == "classification":
                entry = {"image": image, "label": [target], "patient_id": pid}
            elif task == "detection":
                entry = {
                    "image": image,
                    "boxes": [[x, y, x + w, y + h] for x, y, w, h in boxes],
                    "labels": [0] * len(boxes),
                    "patient_id": pid,
                }
            else:
                mask_path = masks / f"{pid}.png"
                if mask_path.is_file():
                    counts["masks reused"] += 1
                else:
                    write_mask_png(boxes_to_mask(boxes, *dicom_size(image)), mask_path)
                    counts["masks written"] += 1
                entry = {"image": image, "label": str(mask_path), "patient_id": pid, "positive": int(bool(boxes))}
            datalist[name].append(entry)

    summary: dict[str, int | str] = {
        "dataset": "rsna-pneumonia",
        "task": task,
        "root": str(root),
        **({"masks_dir": str(masks)} if masks else {}),
        "fraction": str(fraction),
        "seed": seed,
        "images in csv": len(labels),
        "positive images": sum(1 for t, _ in labels.values() if t),
        "negative images": sum(1 for t, _ in labels.values() if not t),
        "boxes": sum(len(b) for _, b in labels.values()),
        **dict(counts),
    }
    for name in SPLIT_NAMES:
        pos = sum(r["target"] for r in split[name])
        summary[f"kept: {name}"] = len(split[name])
        summary[f"kept: {name} positive/negative"] = f"{pos}/{len(split[name]) - pos}"
    run_info = {k: summary.pop(k) for k in ("masks written", "masks reused") if k in summary}
    return PreparedDatalist(datalist, summary, run_info)
