"""mflag_monai.utils.dicom: the one header reader (no pixel data) and the identifiers read through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.errors import InvalidDicomError

from helpers.dicom import write_dicom
from mflag_monai.data.prepare.splits import dicom_size
from mflag_monai.utils.dicom import DICOM_UIDS, dicom_identifiers, read_dicom_header
from mflag_monai.utils.formats import BITMAP_SUFFIXES, DICOM_SUFFIXES, IMAGE_SUFFIXES


def test_header_without_pixels_and_only_the_tags_asked(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "a.dcm", np.zeros((6, 4), np.uint16), ViewPosition="PA", StudyInstanceUID="1.2.3")
    header = read_dicom_header(path)
    assert "PixelData" not in header and header.Rows == 6 and dicom_size(path) == (6, 4)
    only = read_dicom_header(path, ["ViewPosition"])
    assert only.ViewPosition == "PA" and "StudyInstanceUID" not in only
    assert dicom_identifiers(path)["StudyInstanceUID"] == "1.2.3"


def test_a_non_dicom_file_is_the_callers_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG not dicom")
    with pytest.raises(InvalidDicomError):
        read_dicom_header(path)
    assert dicom_identifiers(path) == dict.fromkeys(DICOM_UIDS, "")  # inference rows of PNG inputs: empty


def test_one_suffix_list_for_every_image_file() -> None:
    assert set(IMAGE_SUFFIXES) == set(DICOM_SUFFIXES) | set(BITMAP_SUFFIXES)
    assert not set(DICOM_SUFFIXES) & set(BITMAP_SUFFIXES)
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)  # compared with path.suffix.lower()
