"""Report sections and the paper's assembly."""

from __future__ import annotations

from mflag_monai.transforms import AssembleReportd, assemble_report, parse_report_sections

MIMIC_LIKE = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ with cough.

 COMPARISON:  None.

 FINDINGS:

 The heart is moderately enlarged.  No pleural effusion.
 No pneumothorax.

 IMPRESSION:

 Moderate cardiomegaly.
"""


def test_sections() -> None:
    s = parse_report_sections(MIMIC_LIKE)
    assert s["findings"] == "The heart is moderately enlarged. No pleural effusion. No pneumothorax."
    assert s["impression"] == "Moderate cardiomegaly."
    assert s["comparison"] == "None."
    assert "FINAL REPORT" in s["preamble"]


def test_impression_then_findings() -> None:
    assert assemble_report(MIMIC_LIKE) == (
        "Moderate cardiomegaly. The heart is moderately enlarged. No pleural effusion. No pneumothorax."
    )
    assert assemble_report("FINDINGS: Lungs are clear.") == "Lungs are clear."
    assert assemble_report("IMPRESSION: Normal.") == "Normal."
    assert assemble_report("INDICATION: pain.\nCOMPARISON: none.") == ""


def test_dict_transform_reads_files(tmp_path) -> None:
    f = tmp_path / "s1.txt"
    f.write_text(MIMIC_LIKE)
    out = AssembleReportd("report")({"report": str(f)})
    assert out["report"].startswith("Moderate cardiomegaly.")
    assert AssembleReportd("report")({"report": "  already   assembled "})["report"] == "already assembled"


# ----------------------------------------------------------------------------- the official parser's behaviour

COMBINED = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ with fever.

 FINDINGS AND IMPRESSION:
 Heart size is normal.  There is a small right pleural effusion.
 No pneumothorax.
"""

IN_TEXT_LABEL = """                                 FINAL REPORT
 INDICATION:  Line placement.

 FINDINGS:

 NG TUBE: tip in the stomach, side port below the GE junction.
 RIGHT CHEST TUBE: unchanged in position.
 Lungs are clear.

 IMPRESSION:

 Tubes in standard position.
"""


def test_findings_and_impression_is_the_impression() -> None:
    from mflag_monai.transforms.text import mimic_report_text

    sections = parse_report_sections(COMBINED)
    assert sections["impression"] == "Heart size is normal. There is a small right pleural effusion. No pneumothorax."
    assert "findings and impression" not in sections and "findings" not in sections
    assert mimic_report_text(COMBINED, "s50000001") == (sections["impression"], None)


def test_in_text_upper_case_label_is_not_a_header() -> None:
    sections = parse_report_sections(IN_TEXT_LABEL)
    assert sections["findings"] == (
        "NG TUBE: tip in the stomach, side port below the GE junction. RIGHT CHEST TUBE: unchanged in position. "
        "Lungs are clear."
    )
    assert set(sections) == {"preamble", "indication", "findings", "impression"}
    assert assemble_report(IN_TEXT_LABEL).startswith("Tubes in standard position. NG TUBE: tip in the stomach")


def test_header_names_are_normalised() -> None:
    from mflag_monai.transforms.text import section_name

    assert section_name("FINDINGS AND IMPRESSION") == "impression"
    assert section_name("FINDINGS/IMPRESSION") == "impression"
    assert section_name("CONCLUSION") == "impression"
    assert section_name("FINAL  IMPRESSION") == "impression"  # contains a main section's name
    assert section_name("IMPRESSOIN") == "impression"  # a misspelling the official list knows
    assert section_name("PA AND LATERAL VIEWS OF THE CHEST") == "findings"  # describes the whole study
    assert section_name("CLINICAL HISTORY") == "history" and section_name("REASON FOR EXAM") == "indication"
    for text in ("NG TUBE", "RIGHT CHEST TUBE", "LEFT PICC LINE", "LUNGS", "HEART", "NOTE"):
        assert section_name(text) is None, text
    assert section_name("NOTE", extra_names=("note",)) == "note"


def test_last_non_empty_section_wins_and_headers_need_a_line_start() -> None:
    text = " FINDINGS:\n\n CHEST, PA AND LATERAL: Lungs are clear.\n IMPRESSION: Normal. Size ratio: 0.5\n"
    sections = parse_report_sections(text)
    assert sections["findings"] == "Lungs are clear."  # the empty FINDINGS section gives way to the next
    assert sections["impression"] == "Normal. Size ratio: 0.5"  # mixed case / mid-line colons are text
    assert parse_report_sections(" IMPRESSION: First.\n IMPRESSION: Final.\n")["impression"] == "Final."


def test_empty_text_has_a_reason() -> None:
    from mflag_monai.transforms.text import EMPTY_REASONS, mimic_report_text

    assert mimic_report_text("Chest radiograph: no change.\n") == ("", EMPTY_REASONS["no_headers"])
    assert mimic_report_text(" INDICATION: pain.\n COMPARISON: none.\n") == ("", EMPTY_REASONS["no_sections"])
    assert mimic_report_text(" FINDINGS:\n \n IMPRESSION:\n") == ("", EMPTY_REASONS["empty_sections"])


def test_per_study_rules() -> None:
    from mflag_monai.transforms.text import EMPTY_REASONS, MIMIC_CUSTOM_SPANS, mimic_report_text

    text = " INDICATION: x.\n\n NOTE: Heart size normal.\n"
    assert mimic_report_text(text, "s56451190") == ("Heart size normal.", None)  # its text is the NOTE section
    assert mimic_report_text(text, "56451190") == ("Heart size normal.", None)
    assert mimic_report_text(text, "s50000001") == ("", EMPTY_REASONS["no_sections"])  # NOTE is no header elsewhere
    start, end = MIMIC_CUSTOM_SPANS["s50525523"]
    report = " FINAL REPORT".ljust(start) + " The lungs  are clear.".ljust(end - start) + " WET READ: ignore me.\n"
    assert mimic_report_text(report, "s50525523") == ("The lungs are clear.", None)  # those characters, nothing else
    assert mimic_report_text(" IMPRESSION: Normal.\n", "s58235663") == ("", EMPTY_REASONS["custom_empty"])
