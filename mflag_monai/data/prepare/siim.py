"""SIIM-ACR Pneumothorax (``train-rle.csv`` + a DICOM tree) → segmentation datalist with mask PNGs.

Format and protocol: docs/method.md#siim-acr-pneumothorax and docs/method.md#segmentation.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .registry import PreparedDatalist, register_preparer, walk_files
from .rle import EMPTY_RLE, rle_decode_union
from .splits import (
    SPLIT_NAMES,
    dicom_size,
    resolve_masks_dir,
    seeded_split,
    seeded_subset,
    stratified_fraction,
    write_mask_png,
)
from .tables import read_csv_rows

__all__ = ["prepare_siim", "read_siim_rle"]

RLE_FILE = "train-rle.csv"


def read_siim_rle(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``train-rle.csv``: ImageId → its ``EncodedPixels`` strings (``"-1"`` rows dropped), in file order.

    The official header is ``ImageId, EncodedPixels`` (a space after the comma) and values may carry spaces, so names
    and values are stripped. An image whose rows are all ``-1`` maps to an empty list (no pneumothorax).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --root must be the SIIM-ACR folder holding {RLE_FILE} and the DICOM tree"
        )
    rles: dict[str, list[str]] = {}
    for row in read_csv_rows(path, ("ImageId", "EncodedPixels")):
        image_id, rle = row["ImageId"].strip(), row["EncodedPixels"].strip()
        if not image_id:
            continue
        runs = rles.setdefault(image_id, [])
        if rle and rle != EMPTY_RLE:
            runs.append(rle)
    return rles


@register_preparer("siim-pneumothorax")
def prepare_siim(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    masks_dir: str | os.PathLike | None = None,
    balance: bool = True,
    **_: object,
) -> PreparedDatalist:
    """Turn SIIM-ACR Pneumothorax into a segmentation datalist, writing one mask PNG per kept image.

    Steps: read ``train-rle.csv`` (several rows of one image are unioned); find every ``{ImageId}.dcm`` under ``root``;
    drop images without a DICOM; split 70/15/15 at random with ``seed``, stratified by positive/negative (SIIM has no
    official split; each image is its own group); in training, keep every positive and as many negatives, drawn with
    ``seed`` (docs/method.md#segmentation); then keep ``fraction`` of that training split, stratified by
    positive/negative. Validation and test are never subsampled.

    Args:
        root: the SIIM folder: ``train-rle.csv`` and a tree holding the ``.dcm`` files at any depth.
        out: the datalist path being written; masks default to the folder ``<out stem>_masks`` beside it.
        fraction: share of the (balanced) training split kept.
        seed: seed of the split, the balancing and the fraction draw.
        masks_dir: folder of the mask PNGs (overrides the default beside ``out``).
        balance: balance training positives 1:1 with negatives (only surplus negatives are dropped).

    Returns:
        Entries ``{"image": abs .dcm path, "label": abs mask .png path, "image_id", "positive": 0|1}``. Masks are
        ``<masks_dir>/<ImageId>.png``: 8-bit, 0/255, the DICOM's exact size; an existing file is reused as is.

    Raises:
        ValueError: when neither ``out`` nor ``masks_dir`` is given, or an RLE does not fit its image.
    """
    root = Path(root).expanduser().resolve()
    masks = resolve_masks_dir(out, masks_dir)
    rles = read_siim_rle(root / RLE_FILE)

    # One walk of the tree; several files of the same name would be ambiguous, so the first (sorted) wins.
    dicoms: dict[str, Path] = {}
    duplicates = 0
    for path in sorted(walk_files(root, ".dcm")):
        if path.stem in dicoms:
            duplicates += 1
        else:
            dicoms[path.stem] = path

    counts: Counter[str] = Counter()
    records = []
    for image_id, runs in rles.items():
        if image_id not in dicoms:
            counts["dropped: no DICOM file"] += 1
            continue
        records.append({"image": str(dicoms[image_id]), "image_id": image_id, "positive": int(bool(runs))})

    split = seeded_split(records, seed=seed, group_key="image_id", stratify_key="positive")
    training = split["training"]
    positives = [e for e in training if e["positive"]]
    negatives = [e for e in training if not e["positive"]]
    if balance and len(negatives) > len(positives):
        kept_negatives = {e["image_id"] for e in seeded_subset(negatives, len(positives), seed=seed)}
        counts["training negatives dropped to balance 1:1"] = len(negatives) - len(kept_negatives)
        training = [e for e in training if e["positive"] or e["image_id"] in kept_negatives]
    split["training"] = stratified_fraction(training, fraction, seed=seed, stratify_key="positive")

    # Masks only for the images kept: at 1% most training images never need one.
    datalist: dict[str, list[dict]] = {}
    for name in SPLIT_NAMES:
        datalist[name] = []
        for record in split[name]:
            mask_path = masks / f"{record['image_id']}.png"
            if mask_path.is_file():
                counts["masks reused"] += 1
            else:
                rows, cols = dicom_size(record["image"])
                try:
                    mask = rle_decode_union(rles[record["image_id"]], rows, cols)
                except ValueError as err:
                    raise ValueError(f"{RLE_FILE}: image {record['image_id']} ({rows}x{cols}): {err}") from err
                write_mask_png(mask, mask_path)
                counts["masks written"] += 1
            datalist[name].append({**record, "label": str(mask_path)})

    summary: dict[str, int | str] = {
        "dataset": "siim-pneumothorax",
        "root": str(root),
        "masks_dir": str(masks),
        "fraction": str(fraction),
        "seed": seed,
        "images in csv": len(rles),
        "rows in csv with a region": sum(len(r) for r in rles.values()),
        "positive images": sum(1 for r in rles.values() if r),
        "negative images": sum(1 for r in rles.values() if not r),
        "dicom files found": len(dicoms),
        "dicom files without a csv row": sum(1 for k in dicoms if k not in rles),
        "duplicate dicom names (first kept)": duplicates,
        **dict(counts),
    }
    for name, entries in datalist.items():
        pos = sum(e["positive"] for e in entries)
        summary[f"kept: {name}"] = len(entries)
        summary[f"kept: {name} positive/negative"] = f"{pos}/{len(entries) - pos}"
    run_info = {k: summary.pop(k) for k in ("masks written", "masks reused") if k in summary}
    return PreparedDatalist(datalist, summary, run_info)
