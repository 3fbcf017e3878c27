"""Writing the demo's DICOM files: uncompressed Part-10 files that pydicom 2.4 and 3.x write alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from .common import DEMO_VERSION, uid_2_25

__all__ = ["CR_SOP_CLASS", "DX_SOP_CLASS", "UID_ROOT", "decimal_string", "pixel_module", "save_cr", "save_dicom"]


CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
UID_ROOT = "1.2.826.0.1.3680043.8.498"  # for the SIIM-style dotted UIDs
_IMPLEMENTATION_UID = "2.25.181140927461232309402427457811069125671"  # fixed: no pydicom version in the files
_IMPLEMENTATION_NAME = f"MFLAG_DEMO_{DEMO_VERSION}"
_PYDICOM_3 = int(pydicom.__version__.split(".")[0]) >= 3


def save_dicom(path: Path, pixels: np.ndarray, header: dict[str, Any], sop_class: str, sop_uid: str) -> None:
    """Write an uncompressed Explicit VR Little Endian Part-10 file (pydicom 2.4 and 3.x).

    ``pixels`` is uint8 (8-bit) or uint16 (stored value, 12-bit); ``header`` holds keyword ->
    value pairs, the pixel module included.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_NAME
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128, is_implicit_VR=False, is_little_endian=True)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    data = pixels.astype("<u2" if pixels.dtype == np.uint16 else np.uint8).tobytes()
    if len(data) % 2:  # DICOM values have even length
        data += b"\0"
    ds.add_new(0x7FE00010, "OW" if pixels.dtype == np.uint16 else "OB", data)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _PYDICOM_3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.save_as(str(path), write_like_original=False)


def pixel_module(rows: int, cols: int, bits: int, photometric: str) -> dict[str, Any]:
    return {
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": photometric,
        "Rows": rows,
        "Columns": cols,
        "BitsAllocated": 8 if bits == 8 else 16,
        "BitsStored": bits,
        "HighBit": bits - 1,
        "PixelRepresentation": 0,
    }


def decimal_string(x: float) -> str:
    """A short decimal string (DS values are limited to 16 characters)."""
    return f"{x:.6g}"


def save_cr(path: Path, image: np.ndarray, view: str, rng: np.random.Generator) -> None:
    """A CR file as Open-i ships them: MONOCHROME1, 12 bits stored, ``ViewPosition`` possibly blank."""
    stored = (4095 - np.round(image * 4095.0)).astype(np.uint16)  # MONOCHROME1: high = dark
    rows, cols = image.shape
    header = {
        "Modality": "CR",
        "ViewPosition": view,
        "BodyPartExamined": "CHEST",
        "StudyInstanceUID": uid_2_25(rng),
        "SeriesInstanceUID": uid_2_25(rng),
        "PatientID": "",
        **pixel_module(rows, cols, 12, "MONOCHROME1"),
    }
    save_dicom(path, stored, header, CR_SOP_CLASS, uid_2_25(rng))
