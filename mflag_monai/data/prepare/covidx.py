"""COVIDx (``train.txt`` / ``test.txt``, ``train/`` / ``test/`` images) → 3-class datalist (docs/method.md#covidx)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .labels import COVIDX_CLASSES
from .registry import PreparedDatalist, register_preparer
from .splits import SPLIT_NAMES, seeded_split, stratified_fraction

__all__ = ["prepare_covidx", "read_covidx_list", "CLASS_ALIASES"]

#: Class spellings of the COVIDx releases → :data:`COVIDX_CLASSES` names (matched case-insensitively).
#: The later releases label images ``positive`` / ``negative`` for COVID-19 only; ``negative`` there also holds
#: non-COVID pneumonia, but the files do not say which, so it maps to ``normal`` (= "not COVID-19").
CLASS_ALIASES: dict[str, str] = {
    "normal": "normal",
    "pneumonia": "pneumonia",
    "covid-19": "COVID-19",
    "positive": "COVID-19",
    "negative": "normal",
}


def read_covidx_list(path: Path) -> list[dict[str, str]]:
    """Read a COVIDx split file: ``{"patient_id", "filename", "class", "raw_class"}`` per line, in file order.

    Lines are ``patient_id filename class source`` separated by spaces, without a header. The class is the first
    token after the file name that is a known class (:data:`CLASS_ALIASES`), so extra trailing columns are ignored
    and a file name holding spaces (early releases) is kept whole. Blank lines are skipped.

    Raises:
        ValueError: for a line without a known class after the file name.
    """
    entries = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            at = next((i for i in range(2, len(tokens)) if tokens[i].lower() in CLASS_ALIASES), None)
            if at is None:
                raise ValueError(
                    f"{path}:{number}: expected 'patient_id filename class source' with class in "
                    f"{sorted(CLASS_ALIASES)}, got {line.strip()!r}"
                )
            entries.append(
                {
                    "patient_id": tokens[0],
                    "filename": " ".join(tokens[1:at]),
                    "class": CLASS_ALIASES[tokens[at].lower()],
                    "raw_class": tokens[at],
                }
            )
    return entries


def _split_file(root: Path, name: str, given: str | None) -> Path:
    """``root/given`` if given, else ``root/{name}.txt``, else the one ``{name}*.txt`` (e.g. ``train_COVIDx9A.txt``)."""
    if given is not None:
        path = root / given
    else:
        path = root / f"{name}.txt"
        if not path.is_file():
            matches = sorted(root.glob(f"{name}*.txt"))
            if len(matches) == 1:
                path = matches[0]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --root must be the COVIDx folder holding train.txt, test.txt, train/ and test/ "
            f"(pass {name}_file= for another file name)"
        )
    return path


@register_preparer("covidx")
def prepare_covidx(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    val_fraction: float = 0.1,
    train_file: str | None = None,
    test_file: str | None = None,
    **_: object,
) -> PreparedDatalist:
    """Turn COVIDx into a multi-class datalist (normal / pneumonia / COVID-19).

    Steps: read the official ``train.txt`` and ``test.txt``; images are ``train/<filename>`` and ``test/<filename>``
    (lines without a file are dropped and counted; a file listed twice keeps its first line). ``test.txt`` is the
    test split. Validation is a seeded ``val_fraction`` of ``train.txt``'s patients, grouped by patient and
    stratified by class; then ``fraction`` of the training split is kept, stratified by class.

    Args:
        root: the COVIDx folder.
        out: unused (no files are written besides the datalist).
        fraction: share of the training split kept, in ``(0, 1]``.
        seed: seed of the validation split and of the fraction draw.
        val_fraction: share of the training patients put in validation.
        train_file, test_file: split file names under ``root`` when not ``train.txt`` / ``test.txt``.

    Returns:
        Entries ``{"image": abs path, "label": class index into COVIDX_CLASSES (int), "patient_id"}``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root).expanduser().resolve()
    files = {"train": _split_file(root, "train", train_file), "test": _split_file(root, "test", test_file)}

    counts: Counter[str] = Counter()
    records: dict[str, list[dict]] = {}
    for name, path in files.items():
        records[name], seen = [], set()
        for line in read_covidx_list(path):
            if line["raw_class"] != line["class"]:
                counts[f"class {line['raw_class']} read as {line['class']}"] += 1
            if line["filename"] in seen:
                counts["dropped: file listed twice"] += 1
                continue
            seen.add(line["filename"])
            image = root / name / line["filename"]
            if not image.is_file():
                counts["dropped: image file missing"] += 1
                continue
            label = COVIDX_CLASSES.index(line["class"])
            records[name].append({"image": str(image), "label": label, "patient_id": line["patient_id"]})

    fractions = (1.0 - val_fraction, val_fraction, 0.0)
    split = seeded_split(records["train"], fractions, seed=seed, group_key="patient_id", stratify_key="label")
    datalist = {
        "training": stratified_fraction(split["training"], fraction, seed=seed, stratify_key="label"),
        "validation": split["validation"],
        "test": records["test"],  # the official test list; never subsampled
    }

    summary: dict[str, int | str] = {
        "dataset": "covidx",
        "root": str(root),
        "train list": files["train"].name,
        "test list": files["test"].name,
        "fraction": str(fraction),
        "seed": seed,
        "classes": ", ".join(f"{i}={c}" for i, c in enumerate(COVIDX_CLASSES)),
        **dict(sorted(counts.items())),
        "training before fraction": len(split["training"]),
    }
    shared = {r["patient_id"] for r in records["train"]} & {r["patient_id"] for r in records["test"]}
    if shared:  # reported, not fixed: the official split is kept as published
        summary["note: patient ids in both train and test lists"] = len(shared)
    for name in SPLIT_NAMES:
        per_class = Counter(e["label"] for e in datalist[name])
        summary[f"kept: {name}"] = len(datalist[name])
        summary[f"kept: {name} per class"] = "/".join(f"{c} {per_class[i]}" for i, c in enumerate(COVIDX_CLASSES))
    return PreparedDatalist(datalist, summary)
