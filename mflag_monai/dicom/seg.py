"""DICOM Segmentation (SEG) objects of per-finding masks on a 2-D radiograph, and reading them back.

A radiograph (DX, CR, DR as DX) is a projection: its pixels have no position in a patient coordinate system even when
the file carries a Frame of Reference UID, and most carry none and no ImagePositionPatient/ImageOrientationPatient.
The segmentation is therefore tied to the source pixel for pixel, through the Derivation Image Sequence of each frame
("spatial locations preserved"), not through plane positions. The source's Frame of Reference UID is copied when it
has one; when it has none, none is made up, as a new one would relate the SEG to nothing (the SEG IOD does not require
it then, and highdicom leaves it out). Pixel spacing (Pixel Measures) is copied only from PixelSpacing, and only when
the SEG has no Frame of Reference or the source has a Slice Thickness (DICOM wants one with Pixel Measures under a Frame
of Reference, and a projection has none): ImagerPixelSpacing is measured at the detector, not in the patient, so a CR/DX
with only that gets no Pixel Measures either. The spacing stays readable from the source image.

Each finding is one BINARY segment with one frame, empty masks included (``omit_empty_frames=False``): a reader sees
every segment the model was asked for, and an all-zero mask is written, not dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ._source import load_source, save
from .codes import FINDING_CATEGORY, finding_code

__all__ = ["SEGMENTATION_STORAGE", "read_seg", "write_seg"]

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"

#: CID 7162 "Artificial Intelligence" (Algorithm Family).
_AI_FAMILY = Code("123110", "DCM", "Artificial Intelligence")


def _check_label(label: str, name: str) -> None:
    # Segment Label is LO: at most 64 characters, no backslash (the value separator)
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{name}: a finding name must be a non-empty string, got {label!r}")
    if len(label) > 64 or "\\" in label or any(ord(c) < 32 for c in label):
        raise ValueError(
            f"{name}: finding name {label!r} cannot be a DICOM segment label (LO: <= 64 characters, no \\)"
        )


def _check_masks(masks: Mapping[str, np.ndarray], rows: int, columns: int, name: str) -> np.ndarray:
    """The masks as highdicom's ``(1, Rows, Columns, segments)`` uint8 array, after checking each one."""
    if not masks:
        raise ValueError(f"{name}: no masks; a segmentation needs at least one segment")
    planes = []
    for label, mask in masks.items():
        _check_label(label, name)
        arr = np.asarray(mask)
        if arr.shape != (rows, columns):
            raise ValueError(
                f"{name}: mask {label!r} has shape {arr.shape}, the source image is {rows} x {columns} "
                "(Rows x Columns); masks must be at the source's own resolution"
            )
        if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
            # probabilities or label indices would otherwise be silently binarised
            raise ValueError(f"{name}: mask {label!r} is not binary (bool or 0/1); threshold it first")
        planes.append(arr.astype(np.uint8))
    return np.stack(planes, axis=-1)[np.newaxis]


def write_seg(
    source: str | os.PathLike | Dataset,
    masks: Mapping[str, np.ndarray],
    output_path: str | os.PathLike,
    *,
    series_instance_uid: str,
    series_number: int = 901,
    algorithm_name: str,
    algorithm_version: str,
    manufacturer: str = "mflag-monai",
    content_label: str = "MFLAG",
) -> Path:
    """Write a DICOM SEG with one BINARY segment per finding on the single-frame image ``source``.

    Args:
        source: the image the masks were drawn on (a path or a data set with its pixel data).
        masks: ``{finding name: (Rows, Columns) bool or 0/1 array}``; the name becomes the segment label and picks
            the segmented property type from :data:`~mflag_monai.dicom.codes.FINDING_CODES` (unknown names: SNOMED CT
            "Finding"). Empty masks are kept as all-zero segments.
        output_path: the file to write (atomically; folders are made).
        series_instance_uid: the SEG series (callers make one per run, so all SEGs of a run share it).
        series_number: Series Number of that series.
        algorithm_name: the model (e.g. the bundle's name), in the segments' algorithm identification.
        algorithm_version: its version.
        manufacturer: Manufacturer of the SEG.
        content_label: Content Label (CS: upper-case letters, digits, space or underscore, at most 16).

    Returns:
        ``output_path``. Every SEG gets a new SOP Instance UID; the study, patient and the referenced source image
        (series, SOP instance) are the source's.

    Raises:
        ValueError: naming the source, for a source without pixel data or UIDs, a multi-frame source, a mask whose
            shape is not the source's Rows x Columns or that is not binary, or an empty ``masks``.
    """
    header, name = load_source(source)
    if int(header.get("NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"{name}: a multi-frame image; write_seg takes single-frame radiographs")
    pixel_array = _check_masks(masks, int(header.Rows), int(header.Columns), name)

    # A projection image: let highdicom align the SEG with the pixel matrix (no plane positions) by handing it the
    # header without a Frame of Reference, then put the source's FoR UID back. Sources with a patient geometry keep
    # it and get highdicom's plane positions.
    projection = "ImagePositionPatient" not in header or "ImageOrientationPatient" not in header
    frame_of_reference = None
    if projection and "FrameOfReferenceUID" in header:
        frame_of_reference = (header.FrameOfReferenceUID, header.get("PositionReferenceIndicator", ""))
        del header.FrameOfReferenceUID
        if "PositionReferenceIndicator" in header:
            del header.PositionReferenceIndicator

    algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name, family=_AI_FAMILY, version=algorithm_version)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=FINDING_CATEGORY,
            segmented_property_type=finding_code(label),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for number, label in enumerate(masks, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=[header],
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version,
        # type 1 in the Enhanced General Equipment module; for software, its version identifies the build
        device_serial_number=algorithm_version,
        content_label=content_label,
        content_description=f"{algorithm_name} {algorithm_version}"[:64],
        omit_empty_frames=False,
    )
    if frame_of_reference is not None:
        seg.FrameOfReferenceUID, seg.PositionReferenceIndicator = frame_of_reference
        shared = seg.SharedFunctionalGroupsSequence[0]
        if "PixelMeasuresSequence" in shared and "SliceThickness" not in shared.PixelMeasuresSequence[0]:
            # with a Frame of Reference, Pixel Measures need a Slice Thickness, which a projection has not: the
            # spacing is left to the source image the SEG is aligned with
            if "SliceThickness" in header:
                shared.PixelMeasuresSequence[0].SliceThickness = header.SliceThickness
            else:
                del shared.PixelMeasuresSequence
    if projection and "PatientOrientation" not in seg:
        # type 2C without plane orientation: the SEG's rows and columns run as the source's do
        seg.PatientOrientation = header.get("PatientOrientation", "")
    return save(seg, output_path)


def read_seg(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{segment label: (Rows, Columns) bool mask}`` of a BINARY DICOM SEG on a single-frame image.

    Every segment of the Segment Sequence is returned, in segment-number order: one whose frames were omitted
    (allowed for empty frames, which other writers do) comes back all-zero. Several frames of one segment are
    OR-ed together.

    Raises:
        ValueError: naming the file, when it is not a SEG, not BINARY, or two segments share a label.
    """
    ds = pydicom.dcmread(path)
    if ds.get("SOPClassUID") != SEGMENTATION_STORAGE:
        raise ValueError(f"{path}: not a DICOM Segmentation (SOP Class UID {ds.get('SOPClassUID')})")
    if ds.get("SegmentationType") != "BINARY":
        raise ValueError(f"{path}: a {ds.get('SegmentationType')} segmentation; only BINARY is read")
    rows, columns = int(ds.Rows), int(ds.Columns)
    labels: dict[int, str] = {}
    for item in sorted(ds.SegmentSequence, key=lambda s: int(s.SegmentNumber)):
        if item.SegmentLabel in labels.values():
            raise ValueError(f"{path}: two segments are labelled {item.SegmentLabel!r}")
        labels[int(item.SegmentNumber)] = str(item.SegmentLabel)
    masks = {label: np.zeros((rows, columns), dtype=bool) for label in labels.values()}
    frames = np.asarray(ds.pixel_array).reshape(-1, rows, columns)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    for index, frame in enumerate(frames):
        groups = per_frame[index] if index < len(per_frame) else Dataset()
        # a single-segment SEG may say its segment once, in the shared groups
        identification = groups.get("SegmentIdentificationSequence") or shared.get("SegmentIdentificationSequence")
        if not identification:
            raise ValueError(f"{path}: frame {index + 1} names no segment")
        number = int(identification[0].ReferencedSegmentNumber)
        if number not in labels:
            raise ValueError(f"{path}: frame {index + 1} refers to segment {number}, which the file does not describe")
        masks[labels[number]] |= frame.astype(bool)
    return masks
