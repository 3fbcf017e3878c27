"""DICOM headers read without the pixel data: the one reader, and the identifiers of an inference input for the
rows and records the bundles write."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["DICOM_UIDS", "dicom_identifiers", "read_dicom_header", "source_of"]

#: The identifiers every inference output carries (empty for PNG/JPG inputs).
DICOM_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def read_dicom_header(path: str | os.PathLike, tags: Sequence[str] | None = None) -> Dataset:
    """The data set of a DICOM file without its pixel data; with ``tags``, only those elements (faster).

    pydicom's errors pass through (``InvalidDicomError`` for a file without the DICOM preamble, ``OSError``): what an
    unreadable header means is the caller's to say.
    """
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(tags) if tags else None)


def source_of(image: object) -> str:
    """The file an image came from: ``meta['filename_or_obj']`` of a ``MetaTensor``, else ``""``."""
    meta = getattr(image, "meta", None)
    return str(meta.get("filename_or_obj", "")) if isinstance(meta, Mapping) else ""


def dicom_identifiers(source: str | os.PathLike | object) -> dict[str, str]:
    """``{StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID}`` of a DICOM input; empty strings otherwise.

    ``source`` is a file path or a loaded image (``MetaTensor``). The header is read again without the pixel data:
    the image loader keeps only what the networks need.
    """
    meta = getattr(source, "meta", None)
    if isinstance(meta, Mapping):
        if meta.get("source_format") != "dicom":
            return dict.fromkeys(DICOM_UIDS, "")
        source = meta.get("filename_or_obj", "")
    path = str(source)
    if not path or not os.path.isfile(path):
        return dict.fromkeys(DICOM_UIDS, "")
    from pydicom.errors import InvalidDicomError

    try:
        ds = read_dicom_header(path, DICOM_UIDS)
    except (InvalidDicomError, OSError, ValueError):  # a PNG/JPG path, or a file without a DICOM preamble
        return dict.fromkeys(DICOM_UIDS, "")
    return {uid: str(ds.get(uid, "") or "") for uid in DICOM_UIDS}
