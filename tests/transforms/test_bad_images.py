"""Forged image files that used to load silently wrong: each ends in a correct load or a one-line refusal naming the
file, from the loader (``read_cxr``) and from the header-only check (``check_cxr_file``) alike."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from helpers.dicom import write_dicom
from mflag_monai.transforms import io
from mflag_monai.transforms.io import CXRImageError, check_cxr_file, read_cxr
from mflag_monai.utils.errors import InputError


def smooth(rows: int, cols: int) -> np.ndarray:
    """A smooth 12-bit image (a gradient and a blob), like a radiograph at low resolution."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    blob = np.exp(-(((y - rows * 0.4) / (rows * 0.2)) ** 2 + ((x - cols * 0.6) / (cols * 0.25)) ** 2))
    return (300 + 1800 * blob + 1000 * x / cols + 900 * y / rows).astype(np.uint16)  # within 12 bits


def rewrite(path: Path, **changes: object) -> Path:
    """Change elements of a written file (e.g. ``PixelData``) and save it again as it was."""
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(path)
    return path


def refused(path: Path, *words: str) -> str:
    """Assert that loading ``path`` fails with one line naming the file and holding ``words``; the check agrees."""
    with pytest.raises(CXRImageError) as caught:
        read_cxr(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for word in words:
        assert word in message, message
    return message


def test_pixel_data_longer_than_rows_by_columns_is_refused(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "long.dcm", smooth(64, 64))
    rewrite(path, PixelData=smooth(128, 64).tobytes())  # twice the rows the header declares
    refused(path, "16384 bytes, more than the 8192")
    assert "more than the 8192" in check_cxr_file(path)


def test_three_frames_without_number_of_frames_are_refused(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "frames.dcm", smooth(32, 48))
    rewrite(path, PixelData=np.stack([smooth(32, 48)] * 3).tobytes())
    refused(path, "3 times one image's bytes", "3 frames without NumberOfFrames")
    assert "3 frames without NumberOfFrames" in check_cxr_file(path)


def test_rgb_bytes_labelled_monochrome2_are_refused(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "rgb.dcm", smooth(32, 40), bits_stored=8)
    rgb = np.repeat(smooth(32, 40)[..., None] // 16, 3, axis=-1).astype(np.uint8)
    rewrite(path, BitsAllocated=8, PixelData=rgb.tobytes())
    refused(path, "3 samples (colour) labelled MONOCHROME2")
    assert "labelled MONOCHROME2" in check_cxr_file(path)


def test_a_little_padding_after_the_pixel_data_still_loads(tmp_path: Path) -> None:
    image = smooth(64, 64)
    path = write_dicom(tmp_path / "padded.dcm", image)
    rewrite(path, PixelData=image.tobytes() + bytes(128))
    loaded, _ = read_cxr(path)
    assert loaded.shape == (64, 64)
    assert check_cxr_file(path) is None


def test_rows_and_columns_swapped_are_refused(tmp_path: Path) -> None:
    truth = smooth(96, 48)  # 96 rows of 48
    path = write_dicom(tmp_path / "swapped.dcm", truth, Rows=48, Columns=96)
    refused(path, "Rows and Columns swapped")
    good = write_dicom(tmp_path / "good.dcm", truth)
    assert read_cxr(good)[0].shape == (96, 48)


@pytest.mark.parametrize("shape", [(64, 64), (40, 72), (72, 40)])
def test_noise_images_are_not_taken_for_swapped(tmp_path: Path, shape: tuple[int, int]) -> None:
    noise = np.random.default_rng(0).integers(0, 4096, size=shape).astype(np.uint16)
    image, _ = read_cxr(write_dicom(tmp_path / "noise.dcm", noise), check_intensities=False)
    assert image.shape == shape


def test_values_above_bits_stored_are_masked(tmp_path: Path) -> None:
    image = smooth(64, 64)
    clean, _ = read_cxr(write_dicom(tmp_path / "clean.dcm", image))
    corner = image.copy()
    corner[:4, :4] = 60000  # bits above BitsStored 12 set, as overlay planes in old files do
    loaded, meta = read_cxr(write_dicom(tmp_path / "corner.dcm", corner, bits_stored=12))
    assert meta["bits_stored"] == 12
    assert loaded.mean() > 0.2  # not the black image a min-max over 60000 gives
    np.testing.assert_allclose(loaded[8:, 8:], clean[8:, 8:], atol=0.2)


def test_signed_values_above_bits_stored_are_sign_extended(tmp_path: Path) -> None:
    values = (smooth(32, 32).astype(np.int32) - 2048).astype(np.int16)  # 12-bit signed: -2048..2047
    stray = values.copy()
    stray[0, 0] = np.int16(0x7000 | (int(values[0, 0]) & 0x0FFF))  # garbage in the bits above BitsStored
    clean = write_dicom(tmp_path / "clean.dcm", values.view(np.uint16), PixelRepresentation=1)
    dirty = write_dicom(tmp_path / "dirty.dcm", stray.view(np.uint16), PixelRepresentation=1)
    np.testing.assert_allclose(read_cxr(dirty)[0], read_cxr(clean)[0], atol=1e-6)


def test_images_above_the_size_limit_are_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(io, "MAX_PIXELS", 100 * 100)
    png = tmp_path / "big.png"
    Image.fromarray(np.full((120, 120), 128, np.uint8)).save(png)
    refused(png, "120x120 pixels is larger than the 10,000 pixels read")
    assert "larger than" in check_cxr_file(png)
    dicom = write_dicom(tmp_path / "big.dcm", smooth(120, 120))
    refused(dicom, "larger than")
    assert "larger than" in check_cxr_file(dicom)


def test_large_images_are_decoded_in_float32(tmp_path: Path) -> None:
    rows, cols = 1200, 1000
    png = tmp_path / "large16.png"
    Image.fromarray(smooth(rows, cols).astype(np.uint16) * 16).save(png)  # 16-bit greyscale
    dicom = write_dicom(tmp_path / "large.dcm", smooth(rows, cols), window=(1500.0, 3000.0))
    for path in (png, dicom):
        tracemalloc.start()
        image, _ = read_cxr(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert image.dtype == np.float32
        # float64 anywhere in the chain costs >= 8 bytes a pixel on top of the result
        assert peak < 14 * rows * cols, f"{path.name}: {peak / (rows * cols):.1f} bytes a pixel"


def test_dicom_without_preamble_passes_the_check_and_loads(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "full.dcm", smooth(32, 32))
    ds = pydicom.dcmread(path)
    bare = tmp_path / "bare.dcm"
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(bare, ds, enforce_file_format=False, implicit_vr=False, little_endian=True)
    else:  # pragma: no cover - pydicom 2.4
        ds.is_little_endian, ds.is_implicit_VR = True, False
        pydicom.dcmwrite(bare, ds, write_like_original=True)
        raw = bare.read_bytes()
        if raw[128:132] == b"DICM":  # write_like_original kept the meta: write the bare data set
            ds.preamble = None
            del ds.file_meta
            ds.save_as(bare, write_like_original=True)
    assert bare.read_bytes()[128:132] != b"DICM"
    assert read_cxr(bare)[0].shape == (32, 32)
    assert check_cxr_file(bare) is None


def test_the_check_refuses_what_the_loader_refuses_in_the_same_words(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not an image")
    assert check_cxr_file(text) is not None
    refused(text)
    assert check_cxr_file(tmp_path / "missing.png") == "file not found"
    assert check_cxr_file(tmp_path) == "is a directory, not an image file"


@pytest.mark.parametrize(
    "tags",
    [
        {"WindowCenter": "NaN", "WindowWidth": "400"},
        {"WindowCenter": "1000", "WindowWidth": "inf"},
        {"WindowCenter": "1000", "WindowWidth": "-5"},
    ],
    ids=["center-nan", "width-inf", "width-negative"],
)
def test_a_non_finite_or_non_positive_window_falls_back_to_the_stored_range(tmp_path: Path, tags: dict) -> None:
    stored = smooth(32, 32)
    reference = read_cxr(write_dicom(tmp_path / "plain.dcm", stored))[0]  # no window: full stored range
    path = write_dicom(tmp_path / "bad.dcm", stored, **tags)
    with pytest.warns(UserWarning, match="bad.dcm: ignoring invalid VOI window"):
        image = read_cxr(path)[0]
    assert np.isfinite(image).all() and float(image.std()) > 0.1
    np.testing.assert_allclose(image, reference, atol=1e-6)


@pytest.mark.parametrize("slope", ["NaN", "0", "-1", "inf"])
def test_an_unusable_rescale_slope_is_ignored_naming_the_file(tmp_path: Path, slope: str) -> None:
    stored = smooth(32, 32)
    reference = read_cxr(write_dicom(tmp_path / "plain.dcm", stored))[0]
    path = write_dicom(tmp_path / "slope.dcm", stored, RescaleSlope=slope, RescaleIntercept="0")
    with pytest.warns(UserWarning, match="slope.dcm: ignoring RescaleSlope"):
        image = read_cxr(path)[0]
    np.testing.assert_allclose(image, reference, atol=1e-6)


def test_number_of_frames_zero_is_refused(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "zero.dcm", smooth(32, 32), NumberOfFrames="0")
    refused(path, "NumberOfFrames 0")
    assert "NumberOfFrames 0" in check_cxr_file(path)


def test_a_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.tiff"
    pages = [Image.fromarray(smooth(32, 32).astype(np.uint8)) for _ in range(2)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    refused(path, "2-page TIFF")
    assert "2-page" in check_cxr_file(path)


def test_the_pixel_budget_is_a_setting(tmp_path: Path, monkeypatch) -> None:
    png = tmp_path / "wide.png"
    Image.fromarray(np.tile(np.arange(120, dtype=np.uint8), (100, 1))).save(png)  # 12,000 pixels
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "10000")
    refused(png, "larger than the 10,000 pixels read", io.MAX_PIXELS_ENV)
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "20000")
    assert read_cxr(png)[0].shape == (100, 120)
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match=io.MAX_PIXELS_ENV):
        read_cxr(png)


def test_the_default_budget_refuses_an_8192_square_png_before_decoding(tmp_path: Path) -> None:
    png = tmp_path / "huge.png"
    Image.new("L", (8192, 8192)).save(png, optimize=True)  # a few KB on disk
    tracemalloc.start()
    refused(png, "8192x8192")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20  # refused from the header: nothing near the 268 MB a float32 copy costs


def test_a_large_file_of_zeros_is_refused_without_a_forced_parse(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "zeros.dcm"
    path.write_bytes(bytes(20 * 2**20))
    forced = []
    real = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: forced.append(k.get("force")) or real(*a, **k))
    refused(path, "not a DICOM file")
    assert "not a DICOM file" in check_cxr_file(path)
    assert True not in forced  # a forced parse walks the 20 MB of zeros for tens of seconds
    bare = write_dicom(tmp_path / "bare.dcm", smooth(16, 16))
    ds = pydicom.dcmread(bare)
    ds.preamble, ds.file_meta = None, pydicom.dataset.FileMetaDataset()
    pydicom.filewriter.dcmwrite(tmp_path / "bare2.dcm", ds, write_like_original=True)
    assert read_cxr(tmp_path / "bare2.dcm")[0].shape == (16, 16)  # a bare data set still loads
