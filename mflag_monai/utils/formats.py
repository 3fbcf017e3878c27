"""The image files the package reads, by suffix: the one list the loader, the folder listings and the dataset
preparers agree on."""

from __future__ import annotations

__all__ = ["BITMAP_SUFFIXES", "DICOM_SUFFIXES", "IMAGE_SUFFIXES"]

#: DICOM files (a file without a suffix is tried as DICOM too, by the loader only: a folder listing would take any file)
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
#: Bitmaps read with Pillow
BITMAP_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Every image file the loader reads
IMAGE_SUFFIXES = DICOM_SUFFIXES + BITMAP_SUFFIXES
