"""Radiology report text: section parsing and the paper's assembly (impression, then findings)."""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path

from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["parse_report_sections", "assemble_report", "AssembleReportd"]

# A section header: an upper-case title at the start of a line followed by a colon ("FINDINGS:", "IMPRESSION:").
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&()-]{2,40}):", re.MULTILINE)


def parse_report_sections(text: str) -> dict[str, str]:
    """Split a free-text report into ``{section name (lower case): text}``, whitespace collapsed.

    Text before the first header goes under ``"preamble"``. A repeated section is concatenated.
    """
    sections: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    spans = [("preamble", 0, matches[0].start() if matches else len(text))]
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        spans.append((m.group(1).strip().lower(), m.end(), end))
    for name, start, end in spans:
        body = " ".join(text[start:end].split())
        if body:
            sections[name] = f"{sections[name]} {body}" if name in sections else body
    return sections


def assemble_report(report: str | Mapping[str, str], order: tuple[str, ...] = ("impression", "findings")) -> str:
    """The text M-FLAG encodes: impression followed by findings; missing parts are skipped (SPEC §1).

    Args:
        report: the raw report text, or sections already parsed by :func:`parse_report_sections`.
        order: the sections to keep, in order.

    Returns:
        The assembled text; empty when the report has none of the sections.
    """
    sections = parse_report_sections(report) if isinstance(report, str) else report
    return " ".join(sections[name] for name in order if sections.get(name))


class AssembleReportd(MapTransform):
    """Replace a report (a ``.txt`` path or raw text) under ``keys`` with its assembled impression + findings.

    Already-assembled text (no section headers) passes through unchanged.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        """Assemble every key's report."""
        d = dict(data)
        for key in self.key_iterator(d):
            value = str(d[key])
            if value.endswith(".txt") and os.path.isfile(value):
                value = Path(value).read_text(errors="replace")
            d[key] = assemble_report(value) if _HEADER.search(value) else " ".join(value.split())
        return d
