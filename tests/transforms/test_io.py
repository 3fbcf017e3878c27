"""Loading radiographs as displayed: DICOM photometric chain, PNG/JPG, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.dicom import write_dicom
from mflag_monai.transforms import CXRImageError, LoadCXRImage, LoadCXRImaged


def gradient(rows: int = 48, cols: int = 64, maxv: int = 4095) -> np.ndarray:
    """A 12-bit image that differs along rows and columns, so transposes and flips are caught."""
    r = np.linspace(0, 1, rows)[:, None]
    c = np.linspace(0, 1, cols)[None, :]
    return np.round((0.7 * r + 0.3 * c**2) * maxv).astype(np.uint16)


def test_shape_range_and_orientation(tmp_path: Path) -> None:
    stored = gradient()
    img = LoadCXRImage()(write_dicom(tmp_path / "a.dcm", stored))
    assert img.shape == (1, 48, 64) and img.dtype == torch.float32
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    expected = (stored - stored.min()) / (stored.max() - stored.min())
    assert np.allclose(img[0].numpy(), expected, atol=1e-6)  # rows stay rows: no swap, no flip
    assert img.meta["filename_or_obj"].endswith("a.dcm")


def test_monochrome1_twin_loads_the_same(tmp_path: Path) -> None:
    stored = gradient()
    m2 = LoadCXRImage()(write_dicom(tmp_path / "m2.dcm", stored, "MONOCHROME2"))
    m1 = LoadCXRImage()(write_dicom(tmp_path / "m1.dcm", 4095 - stored, "MONOCHROME1"))
    assert torch.allclose(m1, m2, atol=1e-6)


def test_monochrome1_twin_with_rescale_and_window(tmp_path: Path) -> None:
    stored = gradient()
    # value = 2*stored - 1024; window centred on the middle of the data, narrower than it
    m2 = write_dicom(tmp_path / "m2.dcm", stored, "MONOCHROME2", slope=2, intercept=-1024, window=(3071, 4000))
    # twin: stored' = 4095 - stored, so value' = 7166 - 2*stored = 6142 - value; the window mirrors around 3071
    # (+1 because the LINEAR window's half-pixel offset is not symmetric)
    m1 = write_dicom(
        tmp_path / "m1.dcm", 4095 - stored, "MONOCHROME1", slope=2, intercept=-1024, window=(6142 - 3071 + 1, 4000)
    )
    a, b = LoadCXRImage()(m2), LoadCXRImage()(m1)
    assert a.meta["voi"] == "window"
    assert torch.allclose(a, b, atol=1e-3)
    assert float((a == 0).float().mean()) > 0.01 and float((a == 1).float().mean()) > 0.01  # the window clips


def test_window_applies_the_dicom_linear_function(tmp_path: Path) -> None:
    stored = np.array([[0, 100, 150, 200, 4000]], dtype=np.uint16)
    path = write_dicom(tmp_path / "w.dcm", stored, window=(150, 101))
    img = LoadCXRImage()(path)[0, 0].numpy()
    lo, hi = 150 - 0.5 - 50, 150 - 0.5 + 50
    assert np.allclose(img, np.clip((stored[0] - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert LoadCXRImage(apply_window=False)(path).meta["voi"] == "none"


def test_png_export_matches_dicom(tmp_path: Path) -> None:
    dcm = LoadCXRImage()(write_dicom(tmp_path / "x.dcm", gradient()))
    png = tmp_path / "x.png"
    Image.fromarray(np.round(dcm[0].numpy() * 255).astype(np.uint8)).save(png)
    jpg = tmp_path / "x.jpg"
    Image.fromarray(np.round(dcm[0].numpy() * 255).astype(np.uint8)).save(jpg, quality=100)
    assert float((LoadCXRImage()(png) - dcm).abs().max()) <= 1 / 255 + 1e-6
    assert float((LoadCXRImage()(jpg) - dcm).abs().max()) <= 4 / 255  # lossy, but close and same orientation


def test_16bit_png_and_rgb_jpg(tmp_path: Path) -> None:
    arr = (np.linspace(0, 65535, 32 * 40).reshape(32, 40)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "h.png")
    img = LoadCXRImage()(tmp_path / "h.png")
    assert img.shape == (1, 32, 40) and float(img.max()) == pytest.approx(1.0)
    grey = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (32, 1))
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    assert LoadCXRImage()(tmp_path / "rgb.png").shape == (1, 32, 40)


def test_dict_transform_and_uint8_output(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "a.dcm", gradient())
    out = LoadCXRImaged("image", dtype=torch.uint8)({"image": str(path), "report": "x"})
    assert out["image"].dtype == torch.uint8 and int(out["image"].max()) == 255 and out["report"] == "x"


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CXRImageError, match="missing.dcm: file not found"):
        LoadCXRImage()(tmp_path / "missing.dcm")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom at all")
    with pytest.raises(CXRImageError, match="bad.dcm"):
        LoadCXRImage()(bad)
    rgb = write_dicom(tmp_path / "rgb.dcm", gradient(), "RGB")
    with pytest.raises(CXRImageError, match="rgb.dcm: not a grayscale image"):
        LoadCXRImage()(rgb)


def test_blank_image_warns(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "flat.dcm", np.full((16, 16), 7, np.uint16))
    with pytest.warns(UserWarning, match="blank"):
        LoadCXRImage()(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LoadCXRImage()(write_dicom(tmp_path / "ok.dcm", gradient()))


def test_masks_load_without_intensity_warnings(tmp_path: Path) -> None:
    empty_mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(empty_mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = LoadCXRImaged("label", check_intensities=False)({"label": str(empty_mask)})
    assert float(loaded["label"].max()) == 0.0
