"""DICOM Structured Reports (TID 1500 Measurement Report, Comprehensive 3D SR) of classification probabilities and
detection boxes on a radiograph, and reading them back.

Layout (codes in :mod:`mflag_monai.dicom.codes`):

* classification: one *Measurements and Qualitative Evaluations* group (TID 1501) per finding, with the finding's
  code as Finding Type, the label as Tracking Identifier text, two NUM measurements on the source image: the
  probability (DCM 122157 "Probability") and the threshold it was compared against (DCM 122411 "Threshold Value"),
  both in UCUM ``1`` ("no units"), and a qualitative evaluation (name: the finding's code; value: SCT "Present" when
  probability > threshold, else SCT "Absent"; the ``>`` is the bundles' binarisation rule);
* detection: one *Planar ROI Measurements and Qualitative Evaluations* group (TID 1410) per box, its region a closed
  5-point SCOORD POLYLINE on the source image, its score a "Probability" NUM; the Tracking Identifier text is
  ``"<label> #<n>"`` (n: 1-based box index) so each box is tracked apart. Zero boxes give one *Measurements and
  Qualitative Evaluations* group instead, tracking identifier ``"no boxes"``, on the source image, with the
  qualitative evaluation SNOMED CT "Finding" = "Absent" by the algorithm (an empty Imaging Measurements container is
  invalid DICOM, and recent highdicom refuses a report without a group).

Precision: a NUM keeps each number twice, as Numeric Value (DS, 16 characters: ``0.123456789`` fits, a float64 in
general does not) and as Floating Point Value (FD, the exact float64). The readers return the FD, so probabilities,
thresholds and scores read back equal to the written Python floats; integers have no FD and are exact in the DS.
Box corners are SCOORD Graphic Data, which DICOM stores as FL (float32): they read back as ``float(np.float32(v))``,
exact for integer and half-pixel coordinates below 2**24. SCOORD pixel coordinates are (column, row) with (0, 0) the
top-left corner of the top-left pixel, the convention of the ``(x_min, y_min, x_max, y_max)`` boxes, so no offset
is applied.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ._source import load_source, save
from .codes import (
    ABSENT,
    FINDING_CATEGORY,
    GENERIC_FINDING,
    IMAGING_PROCEDURE,
    PRESENT,
    PROBABILITY,
    THRESHOLD,
    UNITLESS,
    finding_code,
)

__all__ = ["read_classification_sr", "read_detection_sr", "write_classification_sr", "write_detection_sr"]

#: Concept names of the report tree read back (code value, scheme).
_IMAGING_MEASUREMENTS = ("126010", "DCM")
_MEASUREMENT_GROUP = ("125007", "DCM")
_TRACKING_IDENTIFIER = ("112039", "DCM")
_IMAGE_REGION = ("111030", "DCM")
_PROBABILITY = (PROBABILITY.value, PROBABILITY.scheme_designator)
_THRESHOLD = (THRESHOLD.value, THRESHOLD.scheme_designator)
_BOX_SUFFIX = " #"
_NO_BOXES = "no boxes"


def _concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.CodeValue), str(code.CodingSchemeDesignator)


def _children(item: Dataset, concept: tuple[str, str]) -> list[Dataset]:
    return [child for child in item.get("ContentSequence", []) if _concept(child) == concept]


def _number(item: Dataset, concept: tuple[str, str], path: object) -> float:
    """The value of the NUM child ``concept`` of ``item``: its FD (exact) when present, else its DS."""
    found = _children(item, concept)
    if len(found) != 1:
        raise ValueError(f"{path}: a measurement group has {len(found)} {concept} measurements, expected 1")
    value = found[0].MeasuredValueSequence[0]
    if "FloatingPointValue" in value:
        return float(value.FloatingPointValue)
    return float(value.NumericValue)


def _tracking_text(group: Dataset, path: object) -> str:
    found = _children(group, _TRACKING_IDENTIFIER)
    if len(found) != 1:
        raise ValueError(f"{path}: a measurement group without its tracking identifier")
    return str(found[0].TextValue)


def _check_unit_interval(value: object, what: str, name: str) -> float:
    # np.float32 is no Python float, and highdicom writes the exact FD only for floats
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}: {what} must be a number, got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise ValueError(f"{name}: {what} must lie in [0, 1], got {value!r} (a logit instead of a probability?)")
    return number


def _check_label(label: object, name: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{name}: a finding label must be a non-empty string, got {label!r}")
    return label


def _report(
    header: Dataset,
    groups: Sequence[Any],
    output_path: str | os.PathLike,
    *,
    series_instance_uid: str,
    series_number: int,
    algorithm_name: str,
    algorithm_version: str,
    manufacturer: str,
) -> Path:
    """Wrap ``groups`` in a TID 1500 report observed by the algorithm as a device, and write it."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        # the same algorithm and version is the same observer across reports
        uid=generate_uid(entropy_srcs=["mflag-monai observer", algorithm_name, algorithm_version]),
        name=algorithm_name,
        manufacturer_name=manufacturer,
        model_name=f"{algorithm_name} {algorithm_version}"[:64],
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
            observer_identifying_attributes=device,
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=IMAGING_PROCEDURE,
        imaging_measurements=list(groups),
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[header],
        content=report,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=manufacturer,
        is_complete=True,
        is_final=False,  # an algorithm's output, not verified by a reader
    )
    return save(sr, output_path)


def _source_reference(header: Dataset) -> tuple[str, str]:
    return str(header.SOPClassUID), str(header.SOPInstanceUID)


def write_classification_sr(
    source: str | os.PathLike | Dataset,
    findings: Sequence[Mapping[str, Any]],
    output_path: str | os.PathLike,
    *,
    series_instance_uid: str,
    series_number: int = 902,
    algorithm_name: str,
    algorithm_version: str,
    manufacturer: str = "mflag-monai",
) -> Path:
    """Write the per-finding probabilities of one image as a TID 1500 Measurement Report (see the module docstring).

    Args:
        source: the classified image (a path or a data set); only its header is used.
        findings: ``[{"label": str, "probability": float, "threshold": float}, ...]``, one per finding, labels
            distinct; probability and threshold in [0, 1].
        output_path: the file to write (atomically; folders are made).
        series_instance_uid: the SR series (callers make one per run).
        series_number: its Series Number.
        algorithm_name: the model (e.g. the bundle's name): the observer device and each group's algorithm.
        algorithm_version: its version.
        manufacturer: Manufacturer of the SR and of the observer device.

    Returns:
        ``output_path``; the report has a new SOP Instance UID, the source's study and patient, and references the
        source image from every measurement and from its evidence sequence.

    Raises:
        ValueError: naming the source, for a source without UIDs, no findings, a repeated label, or a probability or
            threshold outside [0, 1].
    """
    header, name = load_source(source, need_pixels=False)
    if not findings:
        raise ValueError(f"{name}: no findings to report")
    labels = [_check_label(f.get("label"), name) for f in findings]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name}: finding labels repeat: {labels}")
    sop_class, sop_instance = _source_reference(header)
    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name, version=algorithm_version)
    groups = []
    for label, finding in zip(labels, findings):
        probability = _check_unit_interval(finding.get("probability"), f"the probability of {label!r}", name)
        threshold = _check_unit_interval(finding.get("threshold"), f"the threshold of {label!r}", name)
        code = finding_code(label)
        image = hd.sr.SourceImageForMeasurement(sop_class, sop_instance)
        measurements = [
            hd.sr.Measurement(
                name=concept,
                value=value,
                unit=UNITLESS,
                algorithm_id=algorithm,
                referenced_images=[image],
            )
            for concept, value in ((PROBABILITY, probability), (THRESHOLD, threshold))
        ]
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
                finding_type=code,
                finding_category=FINDING_CATEGORY,
                algorithm_id=algorithm,
                source_images=[hd.sr.SourceImageForMeasurementGroup(sop_class, sop_instance)],
                measurements=measurements,
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(name=code, value=PRESENT if probability > threshold else ABSENT)
                ],
            )
        )
    return _report(
        header,
        groups,
        output_path,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        algorithm_name=algorithm_name,
        algorithm_version=algorithm_version,
        manufacturer=manufacturer,
    )


def _check_box(box: object, label: str, rows: int | None, columns: int | None, name: str) -> tuple[float, ...]:
    try:
        corners = tuple(float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: the box of {label!r} must be (x_min, y_min, x_max, y_max), got {box!r}") from None
    if len(corners) != 4 or not all(math.isfinite(v) for v in corners):
        raise ValueError(
            f"{name}: the box of {label!r} must be 4 finite numbers (x_min, y_min, x_max, y_max), got {box!r}"
        )
    x_min, y_min, x_max, y_max = corners
    if x_min > x_max or y_min > y_max:
        raise ValueError(f"{name}: the box of {label!r} has its corners swapped: {box!r} (x_min, y_min, x_max, y_max)")
    # boxes outside the image were most likely drawn on a resized copy of it
    if x_min < 0 or y_min < 0 or (columns is not None and x_max > columns) or (rows is not None and y_max > rows):
        raise ValueError(
            f"{name}: the box of {label!r} {box!r} leaves the image (Columns {columns}, Rows {rows}); boxes must be "
            "in the source's pixel coordinates"
        )
    return corners


def write_detection_sr(
    source: str | os.PathLike | Dataset,
    boxes: Sequence[Mapping[str, Any]],
    output_path: str | os.PathLike,
    *,
    series_instance_uid: str,
    series_number: int = 903,
    algorithm_name: str,
    algorithm_version: str,
    manufacturer: str = "mflag-monai",
) -> Path:
    """Write the boxes found on one image as a TID 1500 Measurement Report (see the module docstring).

    Args:
        source: the image (a path or a data set); only its header is used.
        boxes: ``[{"label": str, "score": float, "box": (x_min, y_min, x_max, y_max)}, ...]``, corners in the
            source's pixel coordinates (x along the columns), score in [0, 1]; may be empty.
        output_path: the file to write (atomically; folders are made).
        series_instance_uid: the SR series (callers make one per run).
        series_number: its Series Number.
        algorithm_name: the model (e.g. the bundle's name).
        algorithm_version: its version.
        manufacturer: Manufacturer of the SR and of the observer device.

    Returns:
        ``output_path``; each region references the source image (SOP Class and Instance UID).

    Raises:
        ValueError: naming the source, for a source without UIDs, a box that is not 4 finite numbers, has swapped
            corners or leaves the image (when the source gives Rows/Columns), or a score outside [0, 1].
    """
    header, name = load_source(source, need_pixels=False)
    rows = int(header.Rows) if header.get("Rows") else None
    columns = int(header.Columns) if header.get("Columns") else None
    sop_class, sop_instance = _source_reference(header)
    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name, version=algorithm_version)
    groups = []
    for index, detection in enumerate(boxes, start=1):
        label = _check_label(detection.get("label"), name)
        score = _check_unit_interval(detection.get("score"), f"the score of box {index} ({label!r})", name)
        x_min, y_min, x_max, y_max = _check_box(detection.get("box"), label, rows, columns, name)
        outline = np.array(
            [[x_min, y_min], [x_max, y_min], [x_max, y_max], [x_min, y_max], [x_min, y_min]], dtype=np.float32
        )
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=outline,
            source_image=hd.sr.SourceImageForRegion(sop_class, sop_instance),
        )
        code = finding_code(label)
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"{label}{_BOX_SUFFIX}{index}"
                ),
                referenced_region=region,
                finding_type=code,
                finding_category=FINDING_CATEGORY,
                algorithm_id=algorithm,
                measurements=[
                    hd.sr.Measurement(name=PROBABILITY, value=score, unit=UNITLESS, algorithm_id=algorithm),
                ],
            )
        )
    if not groups:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=_NO_BOXES),
                finding_type=GENERIC_FINDING,
                algorithm_id=algorithm,
                source_images=[hd.sr.SourceImageForMeasurementGroup(sop_class, sop_instance)],
                qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=GENERIC_FINDING, value=ABSENT)],
            )
        )
    return _report(
        header,
        groups,
        output_path,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        algorithm_name=algorithm_name,
        algorithm_version=algorithm_version,
        manufacturer=manufacturer,
    )


def _measurement_groups(path: str | os.PathLike) -> list[Dataset]:
    ds = pydicom.dcmread(path)
    if "ContentSequence" not in ds:
        raise ValueError(f"{path}: not a structured report (no Content Sequence)")
    containers = _children(ds, _IMAGING_MEASUREMENTS)
    if not containers:
        return []
    return _children(containers[0], _MEASUREMENT_GROUP)


def read_classification_sr(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``[{"label", "probability", "threshold"}, ...]`` of a report written by :func:`write_classification_sr`, in
    the written order, the numbers exactly as written (their FD values)."""
    findings = []
    for group in _measurement_groups(path):
        findings.append(
            {
                "label": _tracking_text(group, path),
                "probability": _number(group, _PROBABILITY, path),
                "threshold": _number(group, _THRESHOLD, path),
            }
        )
    return findings


def read_detection_sr(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``[{"label", "score", "box": (x_min, y_min, x_max, y_max)}, ...]`` of a report written by
    :func:`write_detection_sr`, in the written order; the score exact, the corners as float32 (DICOM's FL)."""
    detections = []
    for group in _measurement_groups(path):
        text = _tracking_text(group, path)
        regions = _children(group, _IMAGE_REGION)
        if text == _NO_BOXES and not regions:
            continue
        label, suffix, index = text.rpartition(_BOX_SUFFIX)
        if not suffix or not index.isdigit():  # not one of ours: keep the whole identifier as the label
            label = text
        if len(regions) != 1:
            raise ValueError(f"{path}: box {text!r} has {len(regions)} image regions, expected 1")
        points = np.asarray(regions[0].GraphicData, dtype=np.float64).reshape(-1, 2)
        x_min, y_min = points.min(axis=0)
        x_max, y_max = points.max(axis=0)
        detections.append(
            {
                "label": label,
                "score": _number(group, _PROBABILITY, path),
                "box": (float(x_min), float(y_min), float(x_max), float(y_max)),
            }
        )
    return detections
