"""Finding or making the datalist a bundle trains on."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..utils.dist import rank_zero_first
from .check import DatalistError, check_datalist
from ..utils.io import atomic_write_json
from .prepare import get_preparer

logger = logging.getLogger(__name__)

__all__ = ["load_datalist", "resolve_datalist", "list_images", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")

DEMO = "demo"


def load_datalist(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Read a datalist JSON (``{"training": [...], ...}``); the ``summary`` entry, if any, is dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Datalist not found: {path}")
    content = json.loads(path.read_text())
    return {k: v for k, v in content.items() if isinstance(v, list)}


# Datasets read from another dataset's demo folder (the MIMIC-CXR labels come with the MIMIC-CXR release).
DEMO_FOLDERS = {"mimic-cxr-labels": "mimic-cxr"}


def resolve_datalist(
    dataset_dir: str | os.PathLike = DEMO,
    datalist_file: str | os.PathLike | None = None,
    dataset: str = "mimic-cxr",
    demo_subdir: str | None = None,
    demo_studies: int | None = None,
    skip_bad_entries: bool = False,
    report_key: str | None = None,
    **prepare_options: object,
) -> dict[str, list[dict]]:
    """The splits a bundle uses, preparing them when needed.

    Args:
        dataset_dir: ``"demo"`` (the built-in demo data, generated on first use), a dataset folder in its official
            layout (prepared with the ``dataset`` preparer), or a datalist ``.json`` used as it is.
        datalist_file: where the prepared datalist is written and reused while it is current.
        dataset: the preparer's name (``prepare NAME`` on the command line).
        demo_subdir: the demo dataset's folder (default: the ``dataset`` name, or its entry in ``DEMO_FOLDERS``).
        demo_studies: size of the generated demo collection (default: the generator's).
        skip_bad_entries: drop entries with problems (missing files, unreadable headers, empty reports, bad labels)
            instead of refusing to start.
        report_key: the report text key, checked for empty text (pre-training).
        prepare_options: passed to the preparer.

    Raises:
        DatalistError: the datalist has problems and ``skip_bad_entries`` is off; the message lists all of them.
    """
    with rank_zero_first():  # under torchrun, rank 0 generates/prepares; the others then read the same files
        splits = _resolve(str(dataset_dir), datalist_file, dataset, demo_subdir, demo_studies, prepare_options)
    report = check_datalist(splits, report_key=report_key)  # headers only: no pixel is decoded here
    if report.problems:
        print(f"Datalist check:\n{report.format()}", flush=True)
    if report.errors and not skip_bad_entries:
        raise DatalistError(
            f"The datalist has {len(report.errors)} problem entries (listed above); fix them, or pass "
            "--skip_bad_entries true to train without them.\n" + report.format(limit=20)
        )
    return report.clean if report.errors else splits


def _resolve(source, datalist_file, dataset, demo_subdir, demo_studies, prepare_options) -> dict[str, list[dict]]:
    if source.endswith(".json"):
        return load_datalist(source)
    if source == DEMO:
        from .demo import ensure_demo_data

        demo_kwargs = {"num_studies": demo_studies} if demo_studies else {}
        root = Path(ensure_demo_data(**demo_kwargs)) / (demo_subdir or DEMO_FOLDERS.get(dataset, dataset))
    else:
        root = Path(source).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset_dir {source!r} is neither 'demo', a datalist .json, nor a folder.")
    stamp = {"dataset": dataset, "root": str(root), "options": {k: str(v) for k, v in sorted(prepare_options.items())}}
    stamp["newest_input"] = max((p.stat().st_mtime for p in root.glob("*.csv")), default=0.0)
    if datalist_file is not None and Path(datalist_file).is_file():
        content = json.loads(Path(datalist_file).read_text())
        if content.get("source") == stamp:
            return {k: v for k, v in content.items() if isinstance(v, list)}
    out = Path(datalist_file) if datalist_file is not None else None
    prepared = get_preparer(dataset)(root, out=out, **prepare_options)
    logger.info("Prepared %s datalist from %s:\n%s", dataset, root, prepared.format_summary())
    print(f"Prepared {dataset} datalist from {root}:\n{prepared.format_summary()}", flush=True)
    if datalist_file is not None:
        atomic_write_json({**prepared.to_json(), "source": stamp}, datalist_file)
    return prepared.datalist


def list_images(path: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """``[{"image": file}]`` for one image file, or for every DICOM/PNG/JPG under a folder (sorted)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [{"image": str(path)}]
    if not path.is_dir():
        raise FileNotFoundError(f"No image file or folder at {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise FileNotFoundError(f"No {', '.join(suffixes)} files under {path}")
    return [{"image": str(p)} for p in files]
