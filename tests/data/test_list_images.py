"""mflag_monai.data.list_images: a folder of inputs lists every image file the loader reads, nothing else (DICOM
files without a suffix, as PACS exports name them, included), optionally only the DICOM views asked for."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from helpers.dicom import write_dicom
from mflag_monai.data import list_images
from mflag_monai.data.datalist import parse_views
from mflag_monai.transforms.io import LoadCXRImage
from mflag_monai.utils.errors import InputError
from mflag_monai.utils.formats import BITMAP_SUFFIXES


def test_folder_listing_follows_the_loaders_suffixes(tmp_path: Path) -> None:
    for name in ("a.dcm", "b.PNG", "sub/c.tif", "notes.txt", "no_suffix"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [Path(e["image"]).name for e in list_images(tmp_path)] == ["a.dcm", "b.PNG", "c.tif"]


def _dicom(path: Path, **tags: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dicom(path, np.arange(48, dtype=np.uint16).reshape(6, 8) * 64, **tags)


def test_a_pacs_export_lists_dicom_files_without_a_suffix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _dicom(tmp_path / "IM0001")
    _dicom(tmp_path / "1.2.840.113619.2.55.3.604688119")  # a UID as the name: ".604688119" is no image suffix
    _dicom(tmp_path / "DICOMDIR")  # the media's index: DICOM with the preamble, but no image
    (tmp_path / "README").write_text("exported by the PACS\n" * 20)
    (tmp_path / "short").write_bytes(b"DICM")  # DICM at the start is not the Part-10 marker
    (tmp_path / "b.png").write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="mflag_monai.data.datalist"):
        names = [Path(e["image"]).name for e in list_images(tmp_path)]
    assert names == ["1.2.840.113619.2.55.3.604688119", "IM0001", "b.png"]
    assert f"3 files under {tmp_path} are not images and were left out" in caplog.text
    # bitmaps only: the DICOM files are not taken whatever their name
    assert [Path(e["image"]).name for e in list_images(tmp_path, suffixes=BITMAP_SUFFIXES)] == ["b.png"]


def test_the_loader_reads_the_dicom_files_listed_without_a_suffix(tmp_path: Path) -> None:
    for name in ("IM0001", "1.2.840.113619.2.55.3.604688119"):
        _dicom(tmp_path / name, PhotometricInterpretation="MONOCHROME1")
    for entry in list_images(tmp_path):
        image = LoadCXRImage()(entry["image"])
        assert tuple(image.shape) == (1, 6, 8) and image.meta["source_format"] == "dicom"
        assert float(image[0, 0, 0]) == 1.0  # MONOCHROME1 inverted: the DICOM path, not Pillow, read it


def _views_folder(folder: Path) -> Path:
    for name, view in [("pa", "PA"), ("ap", "AP"), ("lat1", "LATERAL"), ("lat2", "LATERAL"), ("ll", "LL")]:
        _dicom(folder / f"{name}.dcm", ViewPosition=view)
    _dicom(folder / "blank.dcm", ViewPosition="")
    _dicom(folder / "IM0007")  # no ViewPosition element at all
    (folder / "export.png").write_bytes(b"x")  # a PNG has no ViewPosition
    return folder


def test_the_view_filter_leaves_out_other_views_and_says_how_many(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _views_folder(tmp_path)
    with caplog.at_level(logging.INFO, logger="mflag_monai.data.datalist"):
        names = [Path(e["image"]).name for e in list_images(folder, views="pa, AP")]
    assert names == ["IM0007", "ap.dcm", "blank.dcm", "export.png", "pa.dcm"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "left out 3 images by ViewPosition (LATERAL: 2, LL: 1)" in warnings[0]
    assert "kept 2 without a ViewPosition" in warnings[0] and "--views" in warnings[0]
    lateral = [Path(e["image"]).name for e in list_images(folder, views=("LATERAL", "LL"))]
    assert lateral == ["IM0007", "blank.dcm", "export.png", "lat1.dcm", "lat2.dcm", "ll.dcm"]
    for off in (None, "all", "ALL", ""):
        assert len(list_images(folder, views=off)) == 8


def test_a_view_filter_that_leaves_nothing_is_an_input_error(tmp_path: Path) -> None:
    for name, view in [("lat1", "LATERAL"), ("lat2", "LATERAL"), ("ll", "LL")]:
        _dicom(tmp_path / f"{name}.dcm", ViewPosition=view)
    with pytest.raises(InputError) as err:
        list_images(tmp_path, views="PA,AP")
    message = str(err.value)
    assert str(tmp_path) in message and "PA, AP" in message and "LATERAL: 2, LL: 1" in message
    with pytest.raises(InputError, match="LATERAL: 1"):  # one file named on its own is filtered too
        list_images(tmp_path / "lat1.dcm", views="PA")
    assert [Path(e["image"]).name for e in list_images(tmp_path / "lat1.dcm", views="LATERAL")] == ["lat1.dcm"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PA,AP", ("PA", "AP")),
        (" pa , ap,PA,", ("PA", "AP")),
        (["PA", "ap"], ("PA", "AP")),
        (("LATERAL",), ("LATERAL",)),
        (["PA,AP", "LL"], ("PA", "AP", "LL")),
        ("all", None),
        ("All", None),
        (["PA", "all"], None),
        ("", None),
        ([], None),
        (None, None),
    ],
)
def test_parse_views(value: object, expected: tuple[str, ...] | None) -> None:
    assert parse_views(value) == expected


@pytest.mark.parametrize("value", ["P-A", "PA;AP", 3, "A" * 17])
def test_parse_views_refuses_what_is_not_a_view_position(value: object) -> None:
    with pytest.raises(InputError, match="views"):
        parse_views(value)
