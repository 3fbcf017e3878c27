"""The source image of a SEG or SR: reading it, checking it, and the header copy handed to highdicom."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..utils.io import atomic_write

#: Identifiers a derived object cannot be written without (it must point back at the image and its study).
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")

#: Type 2 attributes highdicom copies from the source by attribute access: an absent one becomes empty (allowed for
#: type 2) instead of an AttributeError from deep inside highdicom.
_TYPE2_COPIED = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def load_source(source: str | os.PathLike | Dataset, *, need_pixels: bool = True) -> tuple[Dataset, str]:
    """The source's header (a copy without pixel data, type 2 gaps filled) and a name for error messages.

    Raises:
        ValueError: naming the source, when it is not a DICOM file, when a UID of :data:`REQUIRED_UIDS`, Rows/Columns or (with ``need_pixels``)
            the pixel data is missing.
    """
    if isinstance(source, Dataset):
        ds = source
        name = str(
            getattr(source, "filename", "") or f"the data set of SOP instance {source.get('SOPInstanceUID', '?')}"
        )
    else:
        name = str(source)
        try:
            # defer_size: the pixel data is only checked for, never read (a radiograph is tens of MB)
            ds = pydicom.dcmread(source, defer_size=1024)
        except InvalidDicomError as err:
            raise ValueError(f"{name}: not a DICOM file ({err})") from err
    missing = [key for key in REQUIRED_UIDS if not str(ds.get(key, "") or "")]
    if missing:
        raise ValueError(f"{name}: no {', '.join(missing)}; a DICOM SEG/SR must reference the source image by them")
    if need_pixels:
        if not any(key in ds for key in _PIXEL_KEYWORDS):
            raise ValueError(f"{name}: no pixel data; a segmentation must be drawn on an image")
        if not ds.get("Rows") or not ds.get("Columns"):
            raise ValueError(f"{name}: no Rows/Columns; the image size of the source is unknown")
    header = Dataset()
    for elem in ds:
        if elem.keyword not in _PIXEL_KEYWORDS:
            header.add(copy.deepcopy(elem))
    for key in _TYPE2_COPIED:
        if key not in header:
            setattr(header, key, "")
    return header, name


def save(ds: Dataset, output_path: str | os.PathLike) -> Path:
    """Write ``ds`` (a highdicom object, file meta set) atomically: a crash never leaves half a file behind."""
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return atomic_write(Path(output_path), lambda f: f.write(buffer.getvalue()))
