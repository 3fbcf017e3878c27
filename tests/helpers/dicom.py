"""Writing small DICOM files for tests and checking written ones with dciodvfy (works on pydicom 2.4 and 3)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

#: Skips a test that needs the DICOM validator where it is not installed.
requires_dciodvfy = pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not installed (Debian package dicom3tools; .ci/run installs it where apt-get works as root)",
)

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dicom(
    path: Path,
    stored: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    sop_class_uid: str = CR_IMAGE_STORAGE,
    **tags: object,
) -> Path:
    """Write ``stored`` (uint16 rows x cols) as a CR image with the given photometric/rescale/window tags.

    ``sop_class_uid`` and ``Modality=...`` make it another kind of image (e.g. :data:`DX_IMAGE_STORAGE`, ``"DX"``).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "TEST"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(stored.astype(np.uint16)).tobytes()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.4
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


def write_radiograph(
    path: Path,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    shape: tuple[int, int] = (64, 80),
    pixel_spacing: tuple[float, float] | None = None,
    imager_pixel_spacing: tuple[float, float] | None = (0.139, 0.139),
    frame_of_reference: bool = False,
    **tags: object,
) -> Path:
    """Write a chest radiograph as a scanner would: a single-frame DX or CR image with the patient, study and series
    identifiers filled in, a gradient for pixels, and the spacing tags asked for (DX/CR files usually carry
    ImagerPixelSpacing only, and often no Frame of Reference)."""
    if modality not in ("DX", "CR"):
        raise ValueError(f"modality must be DX or CR, got {modality!r}")
    rows, cols = shape
    stored = (np.add.outer(np.arange(rows), np.arange(cols)) * 16 % 4096).astype(np.uint16)
    ids: dict[str, object] = {
        "Modality": modality,
        "PatientName": "Test^Radiograph",
        "PatientBirthDate": "19700101",
        "PatientSex": "O",
        "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": generate_uid(),
        "StudyID": "1",
        "StudyDate": "20240102",
        "StudyTime": "030405",
        "AccessionNumber": "A1",
        "ReferringPhysicianName": "",
        "SeriesNumber": 1,
        "InstanceNumber": 1,
        "Manufacturer": "Test",
        "BodyPartExamined": "CHEST",
        "ViewPosition": "PA",
    }
    if modality == "DX":
        ids.update(PresentationIntentType="FOR PRESENTATION", ImageType=["ORIGINAL", "PRIMARY"])
    if pixel_spacing is not None:
        ids["PixelSpacing"] = list(pixel_spacing)
    if imager_pixel_spacing is not None:
        ids["ImagerPixelSpacing"] = list(imager_pixel_spacing)
    if frame_of_reference:
        ids.update(FrameOfReferenceUID=generate_uid(), PositionReferenceIndicator="")
    ids.update(tags)
    sop_class_uid = DX_IMAGE_STORAGE if modality == "DX" else CR_IMAGE_STORAGE
    return write_dicom(path, stored, photometric=photometric, sop_class_uid=sop_class_uid, **ids)


def dciodvfy_errors(path: Path) -> tuple[list[str], str]:
    """Run ``dciodvfy`` on ``path``: the lines it starts with ``Error`` and its whole report (for failure messages).

    Callers skip when the validator is missing (``shutil.which("dciodvfy")`` is None; Debian's dicom3tools has it).
    """
    exe = shutil.which("dciodvfy")
    if exe is None:
        raise FileNotFoundError("dciodvfy is not installed (Debian package dicom3tools)")
    # dciodvfy writes its findings to stderr and exits non-zero on errors: both streams are read, the code is not
    result = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60, check=False)
    report = result.stdout + result.stderr
    return [line for line in report.splitlines() if line.startswith("Error")], report


def check_dicom_result(result: Path, source: Path) -> None:
    """A SEG/SR an inference run wrote: valid by ``dciodvfy`` (where installed) and referencing ``source``'s study and
    image."""
    if shutil.which("dciodvfy"):
        errors, report = dciodvfy_errors(result)
        assert not errors, report
    out = pydicom.dcmread(result, stop_before_pixels=True)
    src = pydicom.dcmread(source, stop_before_pixels=True)
    assert out.StudyInstanceUID == src.StudyInstanceUID
    assert out.SeriesInstanceUID != src.SeriesInstanceUID  # a new series of results
    referenced = [
        item.ReferencedSOPInstanceUID
        for series in out.get("ReferencedSeriesSequence", [])
        for item in series.get("ReferencedInstanceSequence", [])
    ] + [
        item.ReferencedSOPInstanceUID
        for evidence in out.get("CurrentRequestedProcedureEvidenceSequence", [])
        for series in evidence.get("ReferencedSeriesSequence", [])
        for item in series.get("ReferencedSOPSequence", [])
    ]
    assert src.SOPInstanceUID in referenced, referenced
