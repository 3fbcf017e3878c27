"""Reading the public datasets' CSV tables strictly: every preparer reads its tables here.

``csv.DictReader`` is lenient in ways that make a preparer silently wrong: a repeated column name keeps only the
later column's values, a byte-order mark becomes part of the first column's name (so ``dicom_id`` is "missing"), and
a file saved with ``;`` separators is one column. Each of these ends here in one line naming the file and what to do.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterable
from pathlib import Path

from ...utils.errors import InputError

__all__ = ["read_csv_rows"]

_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def read_csv_rows(
    path: str | os.PathLike,
    required: Iterable[str] = (),
    *,
    skipinitialspace: bool = False,
    hint: str = "",
) -> list[dict[str, str]]:
    """The rows of a CSV table (``.csv`` or gzipped ``.csv.gz``) as dicts keyed by the header's stripped names.

    A UTF-8 byte-order mark is ignored. Rows shorter than the header get ``""`` for the missing cells.

    Args:
        path: the table.
        required: columns that must be in the header.
        skipinitialspace: ignore spaces after each comma (RSNA and Object-CXR write ``a, b``).
        hint: added to a missing-file error (which folder the user should point at).

    Raises:
        InputError: the file is missing, repeats a column name, is separated by something else than commas, or lacks
            a required column; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("table not found" + (f": {hint}" if hint else ""), path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, skipinitialspace=skipinitialspace)
        header = [name.strip() for name in next(reader, [])]
        _check_header(path, header, list(required))
        rows = []
        for values in reader:
            if not values:
                continue
            values = values + [""] * (len(header) - len(values))
            rows.append(dict(zip(header, values)))
    return rows


def _check_header(path: Path, header: list[str], required: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise InputError(
                f"column {name!r} appears twice in the header; only one can be read, so the other would be lost "
                "unseen: remove or rename one",
                path,
            )
        seen.add(name)
    missing = [name for name in required if name not in seen]
    if not missing:
        return
    if len(header) == 1:
        separator = next((s for s in _OTHER_SEPARATORS if s in header[0]), None)
        if separator is not None:
            raise InputError(
                f"the columns are separated by {_OTHER_SEPARATORS[separator]}, not commas (missing columns "
                f"{missing}): save the table as comma-separated CSV",
                path,
            )
    shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
    raise InputError(f"missing columns {missing} (its header: {shown or 'empty'})", path)
