"""Collect a few demo radiographs into one flat folder for MONAI Label's local datastore.

    python scripts/monailabel_app/demo_studies.py --out studies --count 8

The local datastore lists only the files directly inside ``--studies``; the demo data sets keep theirs in
sub-folders (SIIM DICOM by study/series, CheXpert JPG by patient/study), so they are linked here under unique names.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path


def _link(source: Path, target: Path) -> None:
    """Symlink ``target`` to ``source``; copy where symlinks are not allowed."""
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copy2(source, target)


def make_demo_studies(out: str | os.PathLike, demo_root: str | os.PathLike | None = None, count: int = 4) -> list[Path]:
    """Link ``count`` SIIM DICOM files and ``count`` CheXpert JPG files of the demo data into ``out``.

    Args:
        out: the studies folder (created).
        demo_root: a generated demo root; default the built-in demo data, generated on first use.
        count: images per data set.

    Returns:
        The linked files, sorted.
    """
    from mflag_monai.data.demo import ensure_demo_data

    root = Path(demo_root) if demo_root is not None else ensure_demo_data()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for dicom in sorted((root / "siim-pneumothorax").rglob("*.dcm"))[:count]:
        made.append(out / dicom.name)  # SOP instance UIDs: already unique
        _link(dicom, made[-1])
    chexpert = root / "chexpert" / "CheXpert-v1.0-small" / "valid"
    for jpg in sorted(chexpert.rglob("*.jpg"))[:count]:
        made.append(out / "_".join(jpg.relative_to(chexpert).parts))  # patient_study_view.jpg
        _link(jpg, made[-1])
    if not made:
        raise FileNotFoundError(f"no demo images under {root}")
    return sorted(made)


def main() -> None:
    """Command line: ``--out DIR [--demo_root DIR] [--count N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="studies", help="studies folder to fill (default: ./studies)")
    parser.add_argument("--demo_root", default=None, help="demo data root (default: the built-in demo data)")
    parser.add_argument("--count", type=int, default=4, help="images per data set (default: 4)")
    args = parser.parse_args()
    files = make_demo_studies(args.out, args.demo_root, args.count)
    print(f"{len(files)} images in {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
