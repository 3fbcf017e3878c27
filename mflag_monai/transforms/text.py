"""Radiology report text: section parsing and the paper's assembly (impression, then findings)."""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path

from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = [
    "EMPTY_REASONS",
    "MIMIC_CUSTOM_SECTIONS",
    "MIMIC_CUSTOM_SPANS",
    "SECTION_ALIASES",
    "AssembleReportd",
    "assemble_report",
    "mimic_report_text",
    "parse_report_sections",
    "section_name",
]

# Section headers as the official MIMIC-CXR section parser (``mimic-cxr``, ``txt/section_parser.py``) recognises and
# normalises them: the header's text in lower case -> the section it stands for. Misspellings are the ones that
# occur in MIMIC-CXR; combined headers ("findings and impression") count as the impression.
SECTION_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        ("impression", "conclusion", "findings and impression", "findings/impression", "findings/ impression",
         "impresson", "imprression", "imoression", "impressoin", "imprssion", "impresion", "imperssion", "mpression",
         "impession", "ndication"),
        "impression",
    ),
    **dict.fromkeys(
        ("findings", "finding", "findins", "findindgs", "findgings", "findngs", "findnings", "finidngs",
         "reference findings", "chest, two views"),
        "findings",
    ),
    **dict.fromkeys(
        ("comparison", "comparisons", "reference exam", "comparison exam", "comparison film", "comparision",
         "comparsion", "comparrison", "comparisions"),
        "comparison",
    ),
    **dict.fromkeys(
        ("indication", "reason for examination", "reason for exam", "clinical indication", "idication"), "indication"
    ),
    **dict.fromkeys(("history", "clinical history", "clinical information", "patient history", "pfi"), "history"),
    **dict.fromkeys(("examination", "exam", "type of examination"), "examination"),
    **dict.fromkeys(("recommendations", "recommendation", "recommendation(s)"), "recommendations"),
    **dict.fromkeys(("wet read", "wetread"), "wet read"),
    **{name: name for name in ("technique", "notification", "addendum", "date", "comment")},
}  # fmt: skip
# A header naming none of the above but containing one of these words is that section ("FINAL IMPRESSION").
_MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")
# A header describing the study as a whole ("PA AND LATERAL VIEWS OF THE CHEST") introduces the findings ...
_STUDY_DESCRIPTION = re.compile(
    r"chest|portable|pa and lat|lateral and pa|ap and lateral|lateral and ap|frontal and|two views|frontal view"
    r"|pa view|ap view|one view|lateral view|bone window|frontal upright|frontal semi-upright|ribs"
)
# ... unless it names a device or a place, as in-text lines do ("RIGHT CHEST TUBE: unchanged"): such a line is part
# of the findings, and taking it for a header would replace the findings by its remainder.
_NOT_A_DESCRIPTION = re.compile(
    r"\b(tubes?|lines?|catheters?|drains?|wires?|ports?|pacer|pacemaker|picc|stents?|clips?|valves?|devices?|wall)\b"
)
# A candidate header: upper-case words (the official parser's characters) at the start of a line, then a colon and
# white space. Whether it *is* a header depends on its name (:func:`section_name`).
_CANDIDATE = re.compile(r"^[ \t]*([A-Z][A-Z ()/,-]*?)[ \t]*:(?=\s|$)", re.MULTILINE)

# The official parser's per-study rules for reports it cannot section. A study here takes the (last) section of
# that name as its text ...
MIMIC_CUSTOM_SECTIONS: dict[str, str] = {
    "s50913680": "recommendations", "s59363654": "examination", "s59279892": "technique",
    "s59768032": "recommendations", "s57936451": "indication", "s50058765": "indication",
    "s53356173": "examination", "s53202765": "technique", "s50808053": "technique", "s51966317": "indication",
    "s50743547": "examination", "s56451190": "note", "s59067458": "recommendations", "s59215320": "examination",
    "s55124749": "indication", "s54365831": "indication", "s59087630": "recommendations",
    "s58157373": "recommendations", "s56482935": "recommendations", "s58375018": "recommendations",
    "s54654948": "indication", "s55157853": "examination", "s51491012": "history",
}  # fmt: skip
# ... and a study here the characters [start, end) of its report file; (0, 0): the report has no findings at all.
MIMIC_CUSTOM_SPANS: dict[str, tuple[int, int]] = {
    "s50525523": (201, 349), "s57564132": (233, 554), "s59982525": (313, 717), "s53488209": (149, 475),
    "s54875119": (234, 988), "s50196495": (59, 399), "s56579911": (59, 218), "s52648681": (292, 631),
    "s59889364": (172, 453), "s53514462": (73, 377), "s59505494": (59, 450), "s53182247": (59, 412),
    "s51410602": (47, 320), "s56412866": (522, 822), "s54986978": (59, 306), "s59003148": (262, 505),
    "s57150433": (61, 394), "s56760320": (219, 457), "s59562049": (158, 348), "s52674888": (145, 296),
    "s55258338": (192, 568), "s59330497": (140, 655), "s52119491": (179, 454),
    "s58235663": (0, 0), "s50798377": (0, 0), "s54168089": (0, 0), "s53071062": (0, 0), "s56724958": (0, 0),
    "s54231141": (0, 0), "s53607029": (0, 0), "s52035334": (0, 0),
}  # fmt: skip

#: Why a report's text can come out empty (:func:`mimic_report_text`).
EMPTY_REASONS = {
    "no_headers": "no section header",
    "no_sections": "no impression or findings section",
    "empty_sections": "impression and findings sections empty",
    "custom_empty": "no findings (per-study rule)",
}


def section_name(header: str, extra_names: Iterable[str] = ()) -> str | None:
    """The section a header stands for, or ``None`` when it is not a recognised header.

    Args:
        header: the header's text without the colon, e.g. ``"FINDINGS AND IMPRESSION"``.
        extra_names: further names recognised as they are (lower case), e.g. a per-study custom section.

    Returns:
        The normalised section name (``"impression"`` for ``"FINDINGS AND IMPRESSION"``), or ``None`` for text that
        only looks like a header (``"NG TUBE"``).
    """
    name = " ".join(header.lower().split())
    if name in extra_names:
        return name
    if name in SECTION_ALIASES:
        return SECTION_ALIASES[name]
    for main in _MAIN_SECTIONS:
        if main in name:
            return main
    if _STUDY_DESCRIPTION.search(name) and not _NOT_A_DESCRIPTION.search(name):
        return "findings"
    return None


def _split_sections(text: str, extra_names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``[(section name, text with white space collapsed), ...]`` in order; text before the first header is the
    ``"preamble"`` (``"full report"`` when there is no header at all)."""
    extra = tuple(extra_names)
    headers = [(m, name) for m in _CANDIDATE.finditer(text) if (name := section_name(m.group(1), extra))]
    if not headers:
        return [("full report", " ".join(text.split()))]
    spans = [("preamble", 0, headers[0][0].start())]
    for i, (m, name) in enumerate(headers):
        spans.append((name, m.end(), headers[i + 1][0].start() if i + 1 < len(headers) else len(text)))
    return [(name, " ".join(text[start:end].split())) for name, start, end in spans]


def parse_report_sections(text: str, extra_names: Iterable[str] = ()) -> dict[str, str]:
    """Split a free-text report into ``{section name: text}``, white space collapsed, as the official MIMIC-CXR
    section parser does.

    Only recognised headers at the start of a line open a section (:func:`section_name`); an upper-case phrase with a
    colon inside the text (``NG TUBE: tip in the stomach``) stays part of its section. Text before the first header
    is the ``"preamble"`` (``"full report"`` without any header). A section named twice keeps its last non-empty text,
    as the official parser does; empty sections are left out.
    """
    sections: dict[str, str] = {}
    for name, body in _split_sections(text, extra_names):
        if body:
            sections[name] = body
    return sections


def assemble_report(
    report: str | Mapping[str, str], order: tuple[str, ...] = ("impression", "findings"), separator: str = " "
) -> str:
    """The text M-FLAG encodes: impression followed by findings; missing parts are skipped (docs/method.md#report-text).

    Args:
        report: the raw report text, or sections already parsed by :func:`parse_report_sections`.
        order: the sections to keep, in order.
        separator: between the sections (the authors' code joins them with nothing: ``""``).

    Returns:
        The assembled text; empty when the report has none of the sections.
    """
    sections = parse_report_sections(report) if isinstance(report, str) else report
    return separator.join(sections[name] for name in order if sections.get(name))


def mimic_report_text(text: str, study_id: str | None = None, separator: str = " ") -> tuple[str, str | None]:
    """A MIMIC-CXR report's text for pre-training (impression, then findings) and, when it is empty, why.

    The official parser's per-study rules apply first: a study in :data:`MIMIC_CUSTOM_SPANS` takes those characters
    of its report, one in :data:`MIMIC_CUSTOM_SECTIONS` the section of that name (both as the impression).

    Args:
        text: the report file's content.
        study_id: ``"s5..."`` (with or without the ``s``), for the per-study rules.
        separator: between impression and findings (the authors' code: ``""``).

    Returns:
        ``(text, None)``, or ``("", reason)`` with a reason from :data:`EMPTY_REASONS`.
    """
    key = None if study_id is None else str(study_id) if str(study_id).startswith("s") else f"s{study_id}"
    if key in MIMIC_CUSTOM_SPANS:
        start, end = MIMIC_CUSTOM_SPANS[key]
        body = " ".join(text[start:end].split())
        return (body, None) if body else ("", EMPTY_REASONS["custom_empty"])
    if key in MIMIC_CUSTOM_SECTIONS:
        name = MIMIC_CUSTOM_SECTIONS[key]
        body = parse_report_sections(text, extra_names=(name,)).get(name, "")
        return (body, None) if body else ("", EMPTY_REASONS["no_sections"])
    parts = _split_sections(text)
    if parts[0][0] == "full report":
        return "", EMPTY_REASONS["no_headers"]
    assembled = assemble_report(parse_report_sections(text), separator=separator)
    if assembled:
        return assembled, None
    if any(name in ("impression", "findings") for name, _ in parts):
        return "", EMPTY_REASONS["empty_sections"]
    return "", EMPTY_REASONS["no_sections"]


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
            d[key] = assemble_report(value) if _has_header(value) else " ".join(value.split())
        return d


def _has_header(text: str) -> bool:
    """Whether ``text`` holds a recognised section header (else it is taken as already assembled)."""
    return any(section_name(m.group(1)) for m in _CANDIDATE.finditer(text))
