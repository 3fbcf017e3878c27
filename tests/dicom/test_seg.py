"""DICOM SEG writer and reader: valid files (dciodvfy), masks back pixel for pixel, references to the source."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from helpers.dicom import dciodvfy_errors, requires_dciodvfy, write_radiograph
from mflag_monai.dicom import FINDING_CODES, finding_code, read_seg, write_seg
from mflag_monai.dicom.codes import FINDING_CATEGORY, GENERIC_FINDING

ROWS, COLS = 64, 80

#: The radiographs a SEG is written on: the spacing and Frame of Reference variants DX/CR files come in.
SOURCES = {
    "dx-imager-spacing-only": dict(modality="DX"),
    "dx-pixel-spacing-frame-of-reference": dict(
        modality="DX", pixel_spacing=(0.15, 0.15), frame_of_reference=True, PatientOrientation=["L", "F"]
    ),
    "cr-monochrome1-pixel-spacing": dict(
        modality="CR", photometric="MONOCHROME1", pixel_spacing=(0.2, 0.2), imager_pixel_spacing=None
    ),
}


def masks() -> dict[str, np.ndarray]:
    """A finding with a shape, an empty and a full mask, and a name without a code (0/1 ints, not bools)."""
    pneumothorax = np.zeros((ROWS, COLS), dtype=bool)
    pneumothorax[5:20, 50:78] = True
    pneumothorax[30, 0] = True  # a lone pixel at the left edge
    foreign = np.zeros((ROWS, COLS), dtype=np.uint8)
    foreign[40:45, 10:12] = 1
    return {
        "Pneumothorax": pneumothorax,
        "Lung Opacity": np.zeros((ROWS, COLS), dtype=bool),
        "pleural_effusion": np.ones((ROWS, COLS), dtype=bool),
        "Foreign body": foreign,
    }


def write(source: Path | pydicom.Dataset, out: Path, mask_set: dict[str, np.ndarray] | None = None) -> Path:
    return write_seg(
        source,
        masks() if mask_set is None else mask_set,
        out,
        series_instance_uid="1.2.3.4.901",
        algorithm_name="mflag-segmentation",
        algorithm_version="0.1.0",
    )


@pytest.fixture(params=list(SOURCES), ids=list(SOURCES))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write_radiograph(tmp_path / "source.dcm", **SOURCES[request.param])


@requires_dciodvfy
def test_seg_passes_dciodvfy(source: Path, tmp_path: Path) -> None:
    errors, report = dciodvfy_errors(write(source, tmp_path / "seg.dcm"))
    assert not errors, report


def test_masks_read_back_pixel_for_pixel(source: Path, tmp_path: Path) -> None:
    back = read_seg(write(source, tmp_path / "seg.dcm"))
    expected = masks()
    assert list(back) == list(expected)  # segment order is the mapping's
    for label, mask in expected.items():
        assert back[label].dtype == bool and back[label].shape == (ROWS, COLS)
        np.testing.assert_array_equal(back[label], mask.astype(bool), err_msg=label)


def test_seg_references_the_source(source: Path, tmp_path: Path) -> None:
    src = pydicom.dcmread(source)
    out = write(source, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(out)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert seg.PatientID == src.PatientID and seg.PatientName == src.PatientName
    assert seg.SeriesInstanceUID == "1.2.3.4.901" and seg.SeriesNumber == 901
    assert seg.SOPInstanceUID not in (
        src.SOPInstanceUID,
        pydicom.dcmread(write(source, tmp_path / "2.dcm")).SOPInstanceUID,
    )
    (series,) = seg.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == src.SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence] == [src.SOPInstanceUID]
    assert seg.NumberOfFrames == len(masks())  # the empty segment keeps its frame
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (image,) = frame.DerivationImageSequence[0].SourceImageSequence
        assert (image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    # the source's Frame of Reference when it has one; none made up when it has none
    assert seg.get("FrameOfReferenceUID") == src.get("FrameOfReferenceUID")
    # Pixel Measures from PixelSpacing only (ImagerPixelSpacing is at the detector, not in the patient), and not
    # under a Frame of Reference without a Slice Thickness
    measures = seg.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence")
    if "PixelSpacing" in src and "FrameOfReferenceUID" not in src:
        assert [float(v) for v in measures[0].PixelSpacing] == [float(v) for v in src.PixelSpacing]
    else:
        assert measures is None


def test_segments_are_coded_and_automatic(tmp_path: Path) -> None:
    seg = pydicom.dcmread(write(write_radiograph(tmp_path / "source.dcm"), tmp_path / "seg.dcm"))
    by_label = {s.SegmentLabel: s for s in seg.SegmentSequence}
    expected = {
        "Pneumothorax": ("36118008", "SCT"),
        "Lung Opacity": ("112001", "DCM"),
        "pleural_effusion": ("60046008", "SCT"),
        "Foreign body": (GENERIC_FINDING.value, "SCT"),  # no code: the generic finding, the name as label
    }
    for label, (value, scheme) in expected.items():
        segment = by_label[label]
        prop = segment.SegmentedPropertyTypeCodeSequence[0]
        assert (prop.CodeValue, prop.CodingSchemeDesignator) == (value, scheme), label
        category = segment.SegmentedPropertyCategoryCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == ("49755003", "SCT")
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        (algorithm,) = segment.SegmentationAlgorithmIdentificationSequence
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("mflag-segmentation", "0.1.0")
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"  # Artificial Intelligence


def test_highdicom_reads_the_same_masks(tmp_path: Path) -> None:
    source = write_radiograph(tmp_path / "source.dcm")
    seg = hd.seg.segread(write(source, tmp_path / "seg.dcm"))
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[pydicom.dcmread(source).SOPInstanceUID], segment_numbers=[1, 2, 3, 4]
    )
    for index, mask in enumerate(masks().values()):
        np.testing.assert_array_equal(pixels[0, :, :, index], mask.astype(np.uint8))


def test_odd_sized_frames_read_back(tmp_path: Path) -> None:
    # 5 x 7 = 35 bits a frame: the frames share bytes in the 1-bit pixel data
    rng = np.random.default_rng(0)
    mask_set = {f"finding {i}": rng.random((5, 7)) > 0.5 for i in range(3)}
    source = write_radiograph(tmp_path / "source.dcm", shape=(5, 7))
    back = read_seg(write(source, tmp_path / "seg.dcm", mask_set))
    for label, mask in mask_set.items():
        np.testing.assert_array_equal(back[label], mask, err_msg=label)


def test_omitted_empty_frames_read_back_as_zeros(tmp_path: Path) -> None:
    # other writers (highdicom's default) drop the frames of empty segments: the segment must still come back
    source = pydicom.dcmread(write_radiograph(tmp_path / "source.dcm"))
    full = np.zeros((1, ROWS, COLS, 2), dtype=np.uint8)
    full[0, 10:20, 10:20, 0] = 1
    description = dict(
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Pneumothorax,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=full,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            hd.seg.SegmentDescription(segment_number=1, segment_label="drawn", **description),
            hd.seg.SegmentDescription(segment_number=2, segment_label="empty", **description),
        ],
        series_instance_uid=generate_uid(),
        series_number=1,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=True,
    )
    seg.save_as(tmp_path / "omitted.dcm")
    assert pydicom.dcmread(tmp_path / "omitted.dcm").NumberOfFrames == 1
    back = read_seg(tmp_path / "omitted.dcm")
    np.testing.assert_array_equal(back["drawn"], full[0, :, :, 0].astype(bool))
    assert back["empty"].shape == (ROWS, COLS) and not back["empty"].any()


def test_a_source_with_patient_geometry_keeps_it(tmp_path: Path) -> None:
    # not a projection radiograph: highdicom's plane positions, the source's Frame of Reference and spacing
    source = write_radiograph(
        tmp_path / "source.dcm",
        modality="CR",
        pixel_spacing=(0.2, 0.2),
        frame_of_reference=True,
        ImagePositionPatient=[-100, -120, 0],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        SliceThickness=1.0,
    )
    out = write(source, tmp_path / "seg.dcm")
    seg, src = pydicom.dcmread(out), pydicom.dcmread(source)
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID
    position = seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    assert [float(v) for v in position] == [-100.0, -120.0, 0.0]
    back = read_seg(out)
    for label, mask in masks().items():
        np.testing.assert_array_equal(back[label], mask.astype(bool), err_msg=label)
    if shutil.which("dciodvfy"):
        errors, report = dciodvfy_errors(out)
        assert not errors, report


def test_a_data_set_is_a_source_too(tmp_path: Path) -> None:
    src = pydicom.dcmread(write_radiograph(tmp_path / "source.dcm"))
    back = read_seg(write(src, tmp_path / "seg.dcm"))
    np.testing.assert_array_equal(back["Pneumothorax"], masks()["Pneumothorax"])
    assert "PixelData" in src and "FrameOfReferenceUID" not in src  # the caller's data set is left as it was


def test_a_mask_of_another_size_is_refused_naming_the_source(tmp_path: Path) -> None:
    source = write_radiograph(tmp_path / "chest.dcm")
    with pytest.raises(ValueError, match=r"chest\.dcm: mask 'Pneumothorax' has shape \(32, 40\)"):
        write(source, tmp_path / "seg.dcm", {"Pneumothorax": np.zeros((32, 40), bool)})
    transposed = np.zeros((COLS, ROWS), bool)  # (x, y) instead of (rows, columns)
    with pytest.raises(ValueError, match="chest.dcm"):
        write(source, tmp_path / "seg.dcm", {"Pneumothorax": transposed})
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.parametrize(
    "mask_set, message",
    [
        ({}, "no masks"),
        ({"Pneumothorax": np.full((ROWS, COLS), 0.7)}, "not binary"),
        ({"x" * 65: np.zeros((ROWS, COLS), bool)}, "cannot be a DICOM segment label"),
        ({"": np.zeros((ROWS, COLS), bool)}, "non-empty"),
    ],
    ids=["no-masks", "probabilities", "long-label", "empty-label"],
)
def test_bad_masks_are_refused(tmp_path: Path, mask_set: dict[str, np.ndarray], message: str) -> None:
    source = write_radiograph(tmp_path / "chest.dcm")
    with pytest.raises(ValueError, match=message) as err:
        write(source, tmp_path / "seg.dcm", mask_set)
    assert "chest.dcm" in str(err.value)


def test_a_source_without_pixels_or_uids_is_refused(tmp_path: Path) -> None:
    source = write_radiograph(tmp_path / "chest.dcm")
    no_pixels = pydicom.dcmread(source)
    del no_pixels.PixelData
    no_pixels.save_as(tmp_path / "no_pixels.dcm")
    with pytest.raises(ValueError, match=r"no_pixels\.dcm: no pixel data"):
        write(tmp_path / "no_pixels.dcm", tmp_path / "seg.dcm")
    no_study = pydicom.dcmread(source)
    del no_study.StudyInstanceUID
    no_study.save_as(tmp_path / "no_study.dcm")
    with pytest.raises(ValueError, match=r"no_study\.dcm: no StudyInstanceUID"):
        write(tmp_path / "no_study.dcm", tmp_path / "seg.dcm")


def test_read_seg_refuses_other_objects(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a DICOM Segmentation"):
        read_seg(write_radiograph(tmp_path / "chest.dcm"))


def test_finding_codes_match_the_dicom_code_dictionary() -> None:
    # the table's codes, as pydicom's dictionary spells them (the three hand-written ones excepted)
    dictionary = {
        "pneumothorax": codes.SCT.Pneumothorax,
        "opacity": codes.DCM.Opacity,
        "infiltrate": codes.DCM.Infiltrate,
        "pleural effusion": codes.SCT.PleuralEffusion,
        "cardiomegaly": codes.SCT.Cardiomegaly,
        "pulmonary edema": codes.SCT.PulmonaryEdema,
        "nodule": codes.SCT.Nodule,
        "mass": codes.cid7151.Mass,  # the morphologic mass of the segmentation property types
    }
    for name, code in dictionary.items():
        ours = FINDING_CODES[name]
        assert (ours.value, ours.scheme_designator, ours.meaning) == (code.value, code.scheme_designator, code.meaning)
    assert (FINDING_CATEGORY.value, FINDING_CATEGORY.meaning) == (
        codes.SCT.MorphologicallyAbnormalStructure.value,
        codes.SCT.MorphologicallyAbnormalStructure.meaning,
    )
    assert GENERIC_FINDING == codes.SCT.Finding
    assert finding_code("Lung_Opacity") == finding_code("lung-opacity") == FINDING_CODES["opacity"]
    assert finding_code("Something new") == GENERIC_FINDING
