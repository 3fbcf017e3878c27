"""DICOM SR writers and readers: valid TID 1500 reports (dciodvfy), values back as written, references to the
source image."""

from __future__ import annotations

import math
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from helpers.dicom import dciodvfy_errors, requires_dciodvfy, write_radiograph
from mflag_monai.dicom import read_classification_sr, read_detection_sr, write_classification_sr, write_detection_sr

#: Values a CSV/JSON writer would hold: DS's 16 characters fit 0.123456789 but not 1/3 or 0.9876543210123456.
FINDINGS = [
    {"label": "Pneumothorax", "probability": 0.123456789, "threshold": 0.5},
    {"label": "Lung Opacity", "probability": 0.9876543210123456, "threshold": 1 / 3},
    {"label": "Pleural Effusion", "probability": 1, "threshold": 0},
    {"label": "Support Devices", "probability": 2.5e-17, "threshold": 0.5},  # no code: SNOMED CT "Finding"
]

#: Corners in pixel coordinates of the 64 x 80 source: half pixels, whole image, two boxes of one label.
BOXES = [
    {"label": "opacity", "score": 0.87654321, "box": (10.5, 4.25, 30.0, 40.0)},
    {"label": "opacity", "score": 0.5, "box": (0.0, 0.0, 80.0, 64.0)},
    {"label": "Nodule", "score": 0.123456789012345678, "box": (60, 2, 61, 3)},
]

KWARGS = dict(series_instance_uid="1.2.3.4.902", algorithm_name="mflag-classification", algorithm_version="0.1.0")


@pytest.fixture(params=["DX", "CR"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    photometric = "MONOCHROME1" if request.param == "CR" else "MONOCHROME2"
    return write_radiograph(tmp_path / "source.dcm", modality=request.param, photometric=photometric)


def _groups(path: Path) -> list[pydicom.Dataset]:
    ds = pydicom.dcmread(path)
    (container,) = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010"]
    return list(container.ContentSequence)


def _child(item: pydicom.Dataset, code_value: str) -> pydicom.Dataset:
    (found,) = [c for c in item.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == code_value]
    return found


def _assert_refers_to(sr: pydicom.Dataset, src: pydicom.Dataset) -> None:
    assert sr.Modality == "SR" and sr.SOPInstanceUID != src.SOPInstanceUID
    assert sr.StudyInstanceUID == src.StudyInstanceUID and sr.PatientID == src.PatientID
    (study,) = sr.CurrentRequestedProcedureEvidenceSequence
    assert study.StudyInstanceUID == src.StudyInstanceUID
    (series,) = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == src.SeriesInstanceUID
    (instance,) = series.ReferencedSOPSequence
    assert (instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    template = sr.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "1500")


@requires_dciodvfy
def test_classification_sr_passes_dciodvfy(source: Path, tmp_path: Path) -> None:
    errors, report = dciodvfy_errors(write_classification_sr(source, FINDINGS, tmp_path / "sr.dcm", **KWARGS))
    assert not errors, report


@requires_dciodvfy
@pytest.mark.parametrize("boxes", [BOXES, []], ids=["boxes", "no-boxes"])
def test_detection_sr_passes_dciodvfy(source: Path, tmp_path: Path, boxes: list[dict]) -> None:
    errors, report = dciodvfy_errors(write_detection_sr(source, boxes, tmp_path / "sr.dcm", **KWARGS))
    assert not errors, report


def test_classification_reads_back_exactly(source: Path, tmp_path: Path) -> None:
    out = write_classification_sr(source, FINDINGS, tmp_path / "sr.dcm", **KWARGS)
    assert read_classification_sr(out) == FINDINGS  # float64 equality: the FD copy, not the 16-character DS
    probability = _child(_groups(out)[1], "122157").MeasuredValueSequence[0]
    assert len(probability.NumericValue.original_string) <= 16 and float(probability.NumericValue) != 0.9876543210123456
    # numpy scalars are written as the Python floats they equal
    findings = [{"label": "Edema", "probability": np.float32(0.3), "threshold": np.float64(0.25)}]
    back = read_classification_sr(write_classification_sr(source, findings, tmp_path / "np.dcm", **KWARGS))
    assert back == [{"label": "Edema", "probability": float(np.float32(0.3)), "threshold": 0.25}]


def test_classification_is_coded_and_references_the_source(source: Path, tmp_path: Path) -> None:
    src = pydicom.dcmread(source)
    out = write_classification_sr(source, FINDINGS, tmp_path / "sr.dcm", **KWARGS)
    sr = pydicom.dcmread(out)
    _assert_refers_to(sr, src)
    assert sr.SeriesInstanceUID == "1.2.3.4.902" and sr.SeriesNumber == 902
    expected = [("36118008", "Absent"), ("112001", "Present"), ("60046008", "Present"), ("404684003", "Absent")]
    for group, (code, evaluation) in zip(_groups(out), expected):
        finding = _child(group, "121071").ConceptCodeSequence[0]  # Finding
        assert finding.CodeValue == code
        category = _child(group, "276214006").ConceptCodeSequence[0]  # Finding category
        assert category.CodeValue == "49755003"
        # the qualitative evaluation: the finding, present when probability > threshold
        (qualitative,) = [
            c for c in group.ContentSequence if c.ValueType == "CODE" and c.ConceptNameCodeSequence[0].CodeValue == code
        ]
        assert qualitative.ConceptCodeSequence[0].CodeMeaning == evaluation
        for concept in ("122157", "122411"):  # Probability, Threshold Value
            num = _child(group, concept)
            assert num.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "1"
            (image,) = num.ContentSequence[0].ReferencedSOPSequence
            assert image.ReferencedSOPInstanceUID == src.SOPInstanceUID


def test_detection_reads_back(source: Path, tmp_path: Path) -> None:
    out = write_detection_sr(source, BOXES, tmp_path / "sr.dcm", **KWARGS)
    back = read_detection_sr(out)
    assert [b["label"] for b in back] == [b["label"] for b in BOXES]
    assert [b["score"] for b in back] == [b["score"] for b in BOXES]  # exact
    # corners are FL (float32) in DICOM: exact for these, float32-rounded in general
    assert [b["box"] for b in back] == [tuple(float(v) for v in b["box"]) for b in BOXES]
    odd = [{"label": "opacity", "score": 0.5, "box": (0.1, 0.2, 33.3, 44.4)}]
    (box,) = read_detection_sr(write_detection_sr(source, odd, tmp_path / "odd.dcm", **KWARGS))
    assert box["box"] == tuple(float(np.float32(v)) for v in odd[0]["box"])
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(box["box"], odd[0]["box"]))


def test_detection_regions_are_closed_rectangles_on_the_source(source: Path, tmp_path: Path) -> None:
    src = pydicom.dcmread(source)
    out = write_detection_sr(source, BOXES, tmp_path / "sr.dcm", **KWARGS)
    _assert_refers_to(pydicom.dcmread(out), src)
    groups = _groups(out)
    assert len(groups) == len(BOXES)
    for group, detection in zip(groups, BOXES):
        region = _child(group, "111030")  # Image Region
        assert region.GraphicType == "POLYLINE"
        x0, y0, x1, y1 = detection["box"]
        assert np.array_equal(
            np.reshape(region.GraphicData, (-1, 2)), [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        )
        (image,) = region.ContentSequence[0].ReferencedSOPSequence
        assert (image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    identifiers = [_child(g, "112039").TextValue for g in groups]
    assert identifiers == ["opacity #1", "opacity #2", "Nodule #3"]
    # highdicom's own reader finds the same planar ROI groups
    report = hd.sr.srread(out)
    assert len(report.content.get_planar_roi_measurement_groups()) == len(BOXES)


def test_zero_boxes_read_back_empty(source: Path, tmp_path: Path) -> None:
    src = pydicom.dcmread(source)
    out = write_detection_sr(source, [], tmp_path / "sr.dcm", **KWARGS)
    assert read_detection_sr(out) == []
    _assert_refers_to(pydicom.dcmread(out), src)
    (group,) = _groups(out)  # one group: "no boxes", SNOMED CT Finding = Absent, on the source image
    assert _child(group, "112039").TextValue == "no boxes"
    assert _child(group, "404684003").ConceptCodeSequence[0].CodeValue == "272519000"


@pytest.mark.parametrize(
    "findings, message",
    [
        ([], "no findings"),
        ([{"label": "Edema", "probability": 1.5, "threshold": 0.5}], r"probability of 'Edema' must lie in \[0, 1\]"),
        ([{"label": "Edema", "probability": math.nan, "threshold": 0.5}], "must lie in"),
        ([{"label": "Edema", "probability": 0.5, "threshold": -1}], "threshold of 'Edema'"),
        ([{"label": "Edema", "probability": "0.5", "threshold": 0.5}], "must be a number"),
        ([{"label": "Edema", "probability": 0.5, "threshold": 0.5}] * 2, "labels repeat"),
        ([{"label": "", "probability": 0.5, "threshold": 0.5}], "non-empty"),
    ],
    ids=["none", "above-one", "nan", "negative-threshold", "string", "repeated", "empty-label"],
)
def test_bad_findings_are_refused(tmp_path: Path, findings: list[dict], message: str) -> None:
    source = write_radiograph(tmp_path / "chest.dcm")
    with pytest.raises(ValueError, match=message) as err:
        write_classification_sr(source, findings, tmp_path / "sr.dcm", **KWARGS)
    assert "chest.dcm" in str(err.value)
    assert not (tmp_path / "sr.dcm").exists()


@pytest.mark.parametrize(
    "box, message",
    [
        ((0, 0, 81, 10), "leaves the image"),  # Columns is 80: a box on a resized copy
        ((0, 0, 10, 65), "leaves the image"),
        ((-1, 0, 10, 10), "leaves the image"),
        ((10, 0, 5, 10), "corners swapped"),
        ((0, 0, 10), "4 finite numbers"),
        ((0, 0, math.inf, 10), "4 finite numbers"),
        (None, "must be"),
    ],
)
def test_bad_boxes_are_refused(tmp_path: Path, box: object, message: str) -> None:
    source = write_radiograph(tmp_path / "chest.dcm")
    with pytest.raises(ValueError, match=message) as err:
        write_detection_sr(source, [{"label": "opacity", "score": 0.9, "box": box}], tmp_path / "sr.dcm", **KWARGS)
    assert "chest.dcm" in str(err.value)


def test_a_source_without_uids_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(write_radiograph(tmp_path / "chest.dcm"))
    del ds.SeriesInstanceUID
    ds.save_as(tmp_path / "no_series.dcm")
    with pytest.raises(ValueError, match=r"no_series\.dcm: no SeriesInstanceUID"):
        write_classification_sr(tmp_path / "no_series.dcm", FINDINGS, tmp_path / "sr.dcm", **KWARGS)
    with pytest.raises(ValueError, match=r"no_series\.dcm: no SeriesInstanceUID"):
        write_detection_sr(tmp_path / "no_series.dcm", [], tmp_path / "sr.dcm", **KWARGS)


def test_a_file_that_is_not_dicom_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt: not a DICOM file"):
        write_detection_sr(tmp_path / "notes.txt", [], tmp_path / "sr.dcm", **KWARGS)
