"""Checking a datalist before training: every problem at once, fast (headers only, no pixel decoding)."""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["DatalistProblem", "DatalistReport", "check_datalist", "DatalistError"]

_BITMAP = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


class DatalistError(ValueError):
    """A datalist with errors; the message lists them."""


@dataclass
class DatalistProblem:
    """One problem: the split, the entry index, the file (if any), what is wrong, and whether it is fatal."""

    split: str
    index: int
    path: str
    problem: str
    error: bool = True

    def __str__(self) -> str:
        kind = "error" if self.error else "warning"
        where = f"{self.split}[{self.index}]" + (f" {self.path}" if self.path else "")
        return f"{kind}: {where}: {self.problem}"


@dataclass
class DatalistReport:
    """All problems found, and the entries without errors per split."""

    problems: list[DatalistProblem] = field(default_factory=list)
    clean: dict[str, list[dict]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> list[DatalistProblem]:
        """The fatal problems."""
        return [p for p in self.problems if p.error]

    def format(self, limit: int = 50) -> str:
        """One line per problem (the first ``limit``), then a summary line."""
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        total = sum(len(v) for v in self.clean.values())
        lines.append(f"{len(self.errors)} errors, {len(self.problems) - len(self.errors)} warnings ({kinds or 'none'}); {total} usable entries")
        return "\n".join(lines)


def _header_problem(path: str) -> str | None:
    """Why the image file's header cannot be read, or ``None`` (pixels are not decoded)."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix in _BITMAP:
            from PIL import Image

            with Image.open(path) as img:
                img.size  # noqa: B018 - reading the size parses the header only
            return None
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "Rows" not in ds or "Columns" not in ds:
            return "DICOM header has no Rows/Columns: not an image"
        photometric = str(ds.get("PhotometricInterpretation", "")).upper()
        if photometric and photometric not in ("MONOCHROME1", "MONOCHROME2"):
            return f"not a grayscale image (PhotometricInterpretation {photometric})"
        return None
    except Exception as err:  # any parser error means the header is unreadable
        return f"unreadable header ({type(err).__name__}: {err})".replace("\n", " ")


def _label_problem(label: object, expected_len: int | None) -> str | None:
    if isinstance(label, (list, tuple)):
        if expected_len is not None and len(label) != expected_len:
            return f"label has {len(label)} values, other entries have {expected_len}"
        for v in label:
            if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
                return f"label value {v!r} is not a number"
        return None
    if isinstance(label, bool) or not isinstance(label, int):
        return f"label {label!r} is neither a list of numbers, a class index nor a mask file"
    return None if label >= 0 else f"class index {label} is negative"


def check_datalist(
    datalist: Mapping[str, Sequence[Mapping]],
    image_key: str = "image",
    report_key: str | None = None,
    label_key: str = "label",
    read_headers: bool = True,
) -> DatalistReport:
    """Find missing files, unreadable headers, empty reports, duplicate entries and label problems in every split.

    Args:
        datalist: ``{split: [entry, ...]}``.
        image_key: the image path key.
        report_key: the report text key, checked for empty text when given.
        label_key: the label key (a list of numbers, a class index, or a mask file path), checked when present.
        read_headers: read each image's header (DICOM without pixel data; PNG/JPG size); ``False`` only checks files exist.
    """
    report = DatalistReport()
    seen: dict[str, tuple[str, int]] = {}
    for split, entries in datalist.items():
        if not isinstance(entries, list):
            continue
        lengths = Counter(len(e[label_key]) for e in entries if isinstance(e.get(label_key), (list, tuple)))
        expected = lengths.most_common(1)[0][0] if lengths else None
        report.clean[split] = []
        for i, entry in enumerate(entries):
            found: list[DatalistProblem] = []
            path = str(entry.get(image_key, ""))

            def add(problem: str, kind: str, error: bool = True, file: str = path) -> None:
                found.append(DatalistProblem(split, i, file, problem, error))
                report.counts[kind] += 1

            if not path:
                add(f"no '{image_key}' entry", "missing image key")
            elif not os.path.isfile(path):
                add("file not found", "missing file")
            elif read_headers and (why := _header_problem(path)):
                add(why, "unreadable header")
            if path in seen:
                add(f"duplicate of {seen[path][0]}[{seen[path][1]}]", "duplicate", error=False)
            elif path:
                seen[path] = (split, i)
            if report_key is not None and not str(entry.get(report_key, "")).strip():
                add("empty report", "empty report")
            if label_key in entry:
                label = entry[label_key]
                if isinstance(label, str):
                    if not os.path.isfile(label):
                        add("label file not found", "missing label file", file=label)
                elif why := _label_problem(label, expected):
                    add(why, "label problem")
            report.problems.extend(found)
            if not any(p.error for p in found):
                report.clean[split].append(dict(entry))
    return report
