"""Object-CXR (``train.csv`` / ``dev.csv`` + JPG folders) → detection datalist of foreign objects
(docs/method.md#object-cxr).

Each CSV row is ``image_name,annotation``; the annotation lists the objects separated by ``;``, each ``TYPE`` then
pixel coordinates, separated by spaces: ``0 x1 y1 x2 y2`` (rectangle), ``1 x1 y1 x2 y2`` (ellipse, given by its
bounding box), ``2 x1 y1 x2 y2 x3 y3 ...`` (polygon). An empty annotation marks an image without foreign object.
Every object becomes the box enclosing it (MGCA's preprocessing put polygons into a square around their pole of
inaccessibility instead; the enclosing box is what the annotation states).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ...utils.formats import BITMAP_SUFFIXES
from .registry import PreparedDatalist, register_preparer, walk_files
from .splits import SPLIT_NAMES, seeded_split, stratified_fraction
from .tables import read_csv_rows

__all__ = ["OBJECT_TYPES", "parse_object_cxr_annotation", "prepare_object_cxr", "read_object_cxr_csv"]

TRAIN_CSV, DEV_CSV = "train.csv", "dev.csv"
#: The annotation's object types.
OBJECT_TYPES: dict[int, str] = {0: "rectangle", 1: "ellipse", 2: "polygon"}


def parse_object_cxr_annotation(annotation: str) -> list[tuple[str, list[float]]]:
    """``[(type name, [x1, y1, x2, y2]), ...]`` for one annotation string (``[]`` when empty).

    Raises:
        ValueError: an unknown type, an odd number of coordinates, fewer than two points, or a non-number.
    """
    objects = []
    for part in (annotation or "").split(";"):
        tokens = part.split()
        if not tokens:
            continue  # empty annotation, or a trailing ';'
        try:
            kind = int(tokens[0])
            values = [float(v) for v in tokens[1:]]
        except ValueError as err:
            raise ValueError(f"object {part.strip()!r}: not a type followed by numbers") from err
        if kind not in OBJECT_TYPES:
            raise ValueError(f"object {part.strip()!r}: unknown type {kind} (0 rectangle, 1 ellipse, 2 polygon)")
        if len(values) % 2 or len(values) < 4 or (kind != 2 and len(values) != 4):
            expected = "x1 y1 x2 y2" if kind != 2 else "an even number of coordinates, at least two points"
            got = f"got {len(values)} numbers"
            raise ValueError(f"object {part.strip()!r}: {OBJECT_TYPES[kind]} needs {expected}, {got}")
        xs, ys = values[0::2], values[1::2]
        objects.append((OBJECT_TYPES[kind], [min(xs), min(ys), max(xs), max(ys)]))
    return objects


def read_object_cxr_csv(path: str | os.PathLike) -> list[tuple[str, list[tuple[str, list[float]]]]]:
    """Read ``train.csv`` or ``dev.csv``: ``[(image_name, objects), ...]`` in file order.

    Raises:
        InputError: the file is missing, or a column is missing (or repeated).
        ValueError: an annotation that cannot be parsed (the message names the line).
    """
    path = Path(path)
    table = read_csv_rows(
        path,
        ("image_name", "annotation"),
        skipinitialspace=True,
        hint=f"--root must be the Object-CXR folder holding {TRAIN_CSV}, {DEV_CSV} and the images",
    )
    rows = []
    for line, row in enumerate(table, start=2):
        name = (row["image_name"] or "").strip()
        if not name:
            continue
        try:
            rows.append((name, parse_object_cxr_annotation(row["annotation"] or "")))
        except ValueError as err:
            raise ValueError(f"{path.name}:{line}: {name}: {err}") from err
    return rows


def _find_images(root: Path) -> dict[str, list[Path]]:
    """Every bitmap (JPG/PNG/...) under ``root`` by file name (one walk; a name may occur in several folders)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(walk_files(root)):
        if path.suffix.lower() in BITMAP_SUFFIXES and path.is_file():
            found.setdefault(path.name, []).append(path)
    return found


def _locate(name: str, split_dir: str, root: Path, index: dict[str, list[Path]]) -> Path | None:
    """The image of a CSV row: ``root/<split_dir>/<name>`` (the official layout), else ``root/<name>``, else the only
    file of that name anywhere under ``root``."""
    for candidate in (root / split_dir / name, root / name):
        if candidate.is_file():
            return candidate
    matches = index.get(Path(name).name, [])
    return matches[0] if len(matches) == 1 else None


@register_preparer("object-cxr")
def prepare_object_cxr(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    val_fraction: float = 0.1,
    task: str = "detection",
    **_: object,
) -> PreparedDatalist:
    """Turn Object-CXR into a detection datalist.

    The official split is kept: ``dev.csv`` (its labels are public; the challenge's test set is not) is the **test**
    split; validation is a seeded ``val_fraction`` of ``train.csv``'s images, stratified by with/without foreign
    object (each image is its own group: the dataset has no patient ids); then ``fraction`` of the training split is
    kept, stratified the same way. Rows whose image file is missing are dropped (counted in the summary).

    Args:
        root: the Object-CXR folder: ``train.csv``, ``dev.csv`` and the images in ``train/`` and ``dev/`` (or anywhere
            below ``root``, found by file name).
        out: unused (no files are written besides the datalist).
        fraction: share of the training split kept, in ``(0, 1]``.
        seed: seed of the validation split and of the fraction draw.
        val_fraction: share of ``train.csv``'s images put in validation (MGCA: 0.1).
        task: only ``"detection"`` (the bundles pass it).

    Returns:
        Entries ``{"image": abs path, "boxes": [[x1, y1, x2, y2], ...], "labels": [0, ...], "image_id": name}``: boxes
        in pixels of the original image (x along the columns), empty lists for images without foreign object.
    """
    if task != "detection":
        raise ValueError(f"object-cxr serves the detection task only, not {task!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root).expanduser().resolve()
    tables = {name: read_object_cxr_csv(root / name) for name in (TRAIN_CSV, DEV_CSV)}
    index = _find_images(root)

    counts: Counter[str] = Counter()
    records: dict[str, list[dict]] = {}
    for csv_name, rows in tables.items():
        records[csv_name] = []
        split_dir = Path(csv_name).stem  # train.csv -> train/, dev.csv -> dev/
        for name, objects in rows:
            image = _locate(name, split_dir, root, index)
            if image is None:
                counts["dropped: image file missing or ambiguous"] += 1
                continue
            for kind, _box in objects:
                counts[f"objects: {kind}"] += 1
            boxes = [box for _, box in objects]
            entry = {"image": str(image), "boxes": boxes, "labels": [0] * len(boxes), "image_id": name}
            records[csv_name].append({**entry, "positive": int(bool(boxes))})

    shares = (1.0 - val_fraction, val_fraction, 0.0)
    split = seeded_split(records[TRAIN_CSV], shares, seed=seed, stratify_key="positive")
    kept = {
        "training": stratified_fraction(split["training"], fraction, seed=seed, stratify_key="positive"),
        "validation": split["validation"],
        "test": records[DEV_CSV],  # dev.csv is the test split; never subsampled
    }
    datalist = {name: [{k: v for k, v in e.items() if k != "positive"} for e in kept[name]] for name in SPLIT_NAMES}

    summary: dict[str, int | str] = {
        "dataset": "object-cxr",
        "task": task,
        "root": str(root),
        "fraction": str(fraction),
        "seed": seed,
        f"rows in {TRAIN_CSV}": len(tables[TRAIN_CSV]),
        f"rows in {DEV_CSV} (test)": len(tables[DEV_CSV]),
        **dict(sorted(counts.items())),
        "training before fraction": len(split["training"]),
    }
    for name in SPLIT_NAMES:
        pos = sum(e["positive"] for e in kept[name])
        summary[f"kept: {name}"] = len(kept[name])
        summary[f"kept: {name} with/without objects"] = f"{pos}/{len(kept[name]) - pos}"
        summary[f"kept: {name} boxes"] = sum(len(e["boxes"]) for e in kept[name])
    return PreparedDatalist(datalist, summary)
