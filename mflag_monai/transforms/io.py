"""Reading chest radiographs the way a radiologist views them.

MONAI's readers do not fit chest X-ray DICOM as it comes from PACS (SPEC §4): ``PydicomReader`` applies the rescale
but neither inverts MONOCHROME1 nor applies the VOI window, and swaps the axes; ``ITKReader`` inverts MONOCHROME1
but returns ``(W, H, 1)`` and ignores windowing. So the photometric chain lives here, in one place:

    stored values → modality LUT (rescale slope/intercept or LUT) → VOI (window centre/width, or VOI LUT)
    → [0, 1] → MONOCHROME1 inverted

and PNG/JPG exports are read with Pillow (EXIF orientation applied, 8 or 16 bit). The result is ``[1, H, W]`` float32
in [0, 1], rows first, bright = dense, as displayed.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

logger = logging.getLogger(__name__)

__all__ = ["CXRImageError", "read_cxr", "read_dicom", "read_bitmap", "LoadCXRImage", "LoadCXRImaged"]

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
BITMAP_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}

# Transfer syntaxes and the plugin that decodes them, for the error message when pixel data cannot be decoded.
_DECODER_HINT = (
    "install the decoder plugins: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle "
    "(or python-gdcm)"
)


class CXRImageError(ValueError):
    """An image file that cannot be read as a 2D grayscale chest radiograph; the message names the file."""


def _pixel_utils():
    """``apply_modality_lut`` and ``apply_voi_lut`` on pydicom 3 (``pydicom.pixels``) and 2.4 (``pixel_data_handlers``)."""
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    return apply_modality_lut, apply_voi_lut


def _first(value) -> float:
    """First value of a possibly multi-valued DICOM number (WindowCenter can hold several presets)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1]."""
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        lo, hi = center - width / 2.0, center + width / 2.0
    else:  # LINEAR: the standard's half-pixel offsets
        if width < 1:
            raise ValueError("WindowWidth must be >= 1 for a LINEAR window")
        lo, hi = center - 0.5 - (width - 1) / 2.0, center - 0.5 + (width - 1) / 2.0
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def _min_max(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def read_dicom(path: str | os.PathLike, apply_window: bool = True) -> tuple[np.ndarray, dict]:
    """Read a 2D grayscale DICOM radiograph as an ``[H, W]`` float32 image in [0, 1], as displayed.

    Raises:
        CXRImageError: the file is not a readable single-frame grayscale image (the message says why).
    """
    import pydicom

    path = str(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # pydicom raises several types for broken files
        raise CXRImageError(f"{path}: not a readable DICOM file ({type(err).__name__}: {err})") from err
    if "PixelData" not in ds:
        raise CXRImageError(f"{path}: DICOM has no pixel data (SOP class {ds.get('SOPClassUID', 'unknown')})")
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise CXRImageError(
            f"{path}: not a grayscale image (PhotometricInterpretation {photometric or 'missing'}, "
            f"SamplesPerPixel {samples}); chest radiographs must be MONOCHROME1 or MONOCHROME2"
        )
    if frames > 1:
        raise CXRImageError(f"{path}: multi-frame DICOM ({frames} frames); expected a single 2D radiograph")
    try:
        stored = ds.pixel_array
    except Exception as err:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise CXRImageError(f"{path}: cannot decode pixel data ({name}): {err}; {_DECODER_HINT}") from err
    if stored.ndim != 2:
        raise CXRImageError(f"{path}: pixel data has shape {stored.shape}; expected a 2D image")

    apply_modality_lut, apply_voi_lut = _pixel_utils()
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    voi = "none"
    if apply_window and "VOILUTSequence" in ds:
        values = _min_max(np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64))
        voi = "lut"
    elif apply_window and ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        values = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth), str(ds.get("VOILUTFunction", "")))
        voi = "window"
    else:
        values = _min_max(values)
    if photometric == "MONOCHROME1":  # high stored value = dark: flip so bright means dense, as displayed
        values = 1.0 - values
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    meta = {
        "source_format": "dicom",
        "photometric_interpretation": photometric,
        "voi": voi,
        "modality": str(ds.get("Modality", "")),
        "view_position": str(ds.get("ViewPosition", "")),
        "pixel_spacing": [float(s) for s in spacing] if spacing else [1.0, 1.0],
        "bits_stored": int(ds.get("BitsStored", 0) or 0),
    }
    return values.astype(np.float32), meta


def read_bitmap(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a PNG/JPG/TIFF export as ``[H, W]`` float32 in [0, 1] (8 or 16 bit; colour converted to grey)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
            else:
                if mode not in ("L", "1"):
                    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
                    if np.abs(rgb[..., 0] - rgb[..., 1]).max() > 8 or np.abs(rgb[..., 1] - rgb[..., 2]).max() > 8:
                        warnings.warn(f"{path}: colour image converted to grey; is this a radiograph?", stacklevel=3)
                arr = np.asarray(img.convert("L"), dtype=np.float64)
                scale = 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise CXRImageError(f"{path}: not a readable image file ({err})") from err
    return (arr / scale).astype(np.float32), {"source_format": Path(path).suffix.lower().lstrip("."), "pixel_spacing": [1.0, 1.0]}


def _is_dicom(path: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in BITMAP_SUFFIXES:
        return False
    if suffix in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as f:  # unknown suffix: look for the DICOM preamble marker
        head = f.read(132)
    return head[128:132] == b"DICM"


def _check_intensities(path: str, image: np.ndarray) -> None:
    """Warn about images that are probably wrong (blank, or mostly saturated), as torchxrayvision does."""
    if float(image.max() - image.min()) < 1e-3:
        warnings.warn(f"{path}: image is blank (constant intensity {float(image.mean()):.3f})", stacklevel=3)
        return
    saturated = float(np.mean((image <= 0.0) | (image >= 1.0)))
    if saturated > 0.6:
        warnings.warn(
            f"{path}: {saturated:.0%} of pixels are at 0 or 1; check the window or photometric interpretation",
            stacklevel=3,
        )


def read_cxr(path: str | os.PathLike, apply_window: bool = True) -> tuple[np.ndarray, dict]:
    """Read a DICOM, PNG or JPG chest radiograph as ``([H, W] float32 in [0, 1], meta)``."""
    path = str(path)
    if not os.path.isfile(path):
        raise CXRImageError(f"{path}: file not found")
    image, meta = read_dicom(path, apply_window) if _is_dicom(path) else read_bitmap(path)
    _check_intensities(path, image)
    meta.update({"filename_or_obj": path, "spatial_shape": np.asarray(image.shape)})
    return image, meta


class LoadCXRImage(Transform):
    """Load a chest radiograph file into a ``MetaTensor`` of shape ``[1, H, W]``, float32, in [0, 1].

    Args:
        apply_window: apply the DICOM VOI window / LUT when the file has one (otherwise min-max of the data).
        dtype: output dtype (``torch.uint8`` gives a compact cacheable image scaled to 0..255).
    """

    def __init__(self, apply_window: bool = True, dtype: torch.dtype = torch.float32) -> None:
        self.apply_window = apply_window
        self.dtype = dtype

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        """Read ``path``; raise :class:`CXRImageError` naming the file when it cannot be used."""
        image, meta = read_cxr(path, self.apply_window)
        spacing = meta.get("pixel_spacing", [1.0, 1.0])
        affine = torch.diag(torch.tensor([spacing[0], spacing[1], 1.0], dtype=torch.float64))
        meta["original_channel_dim"] = float("nan")  # MONAI's marker for "no channel in the file"
        tensor = torch.from_numpy(image)[None]
        if self.dtype == torch.uint8:
            tensor = (tensor * 255.0).round()
        return MetaTensor(tensor.to(self.dtype), affine=affine, meta=meta)


class LoadCXRImaged(MapTransform):
    """Dictionary version of :class:`LoadCXRImage`: replaces each path under ``keys`` with the loaded image."""

    def __init__(
        self,
        keys: KeysCollection,
        apply_window: bool = True,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCXRImage(apply_window=apply_window, dtype=dtype)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        """Load every key's file."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
