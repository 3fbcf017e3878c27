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
