"""Reading chest radiographs the way a radiologist views them.

MONAI's readers do not fit chest X-ray DICOM as it comes from PACS (docs/method.md#dicom): ``PydicomReader`` applies the
rescale but neither inverts MONOCHROME1 nor applies the VOI window, and swaps the axes; ``ITKReader`` inverts
MONOCHROME1 but returns ``(W, H, 1)`` and ignores windowing. So the photometric chain lives here, in one place:

    stored values → modality LUT (rescale slope/intercept or LUT) → VOI (window centre/width, or VOI LUT)
    → [0, 1] → MONOCHROME1 inverted

and PNG/JPG exports are read with Pillow (EXIF orientation applied, 8 or 16 bit). The result is ``[1, H, W]`` float32
in [0, 1], rows first, bright = dense, as displayed.

Any other file (colour or palette, multi-frame, no pixel data, truncated, malformed, compressed without an installed
decoder, not DICOM at all) raises :class:`CXRImageError` with the one-line message ``"<path>: <reason>"``. So do files
whose pixel data does not fit their header (more bytes than Rows×Columns×frames×samples: extra frames without
NumberOfFrames, RGB bytes labelled MONOCHROME2; Rows and Columns swapped) and images above :data:`MAX_PIXELS`.
Values above BitsStored are masked off, as the standard says. Pixels are handled in float32 (never float64), so a
large image costs 4 bytes a pixel per copy.

The header checks and the public readers are here; the DICOM decoding steps are in :mod:`.dicom_pixels`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from ..utils.errors import InputError
from ..utils.formats import BITMAP_SUFFIXES, DICOM_SUFFIXES
from .dicom_pixels import (
    DECODER_HINT,
    PIXEL_KEYWORDS,
    Refusal,
    apply_voi,
    check_pixel_length,
    decode_pixels,
    decoder_status,
    int_tag,
    pixel_data_length,
    pixel_spacing,
    pixel_utils,
    read_dataset,
    sop_class,
    transfer_syntax,
)

if TYPE_CHECKING:  # annotations only: pydicom is imported inside the functions that use it
    from pydicom.dataset import Dataset

__all__ = [
    "MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "CXRImageError",
    "LoadCXRImage",
    "LoadCXRImaged",
    "FileHeader",
    "check_cxr_file",
    "inspect_cxr_file",
    "max_pixels",
    "read_bitmap",
    "read_cxr",
    "read_dicom",
]

#: Default pixel budget (rows × columns declared in the header): 5000², above the largest chest radiograph detectors
#: (~4300²). Larger files are refused before decoding: a tiny PNG can declare 8192² and cost ~770 MB in the transform
#: chain. The environment variable :data:`MAX_PIXELS_ENV` raises (or lowers) it for every process of a run.
MAX_PIXELS = 5000 * 5000
MAX_PIXELS_ENV = "MFLAG_MONAI_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel budget: ``$MFLAG_MONAI_MAX_PIXELS`` when set, else :data:`MAX_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return MAX_PIXELS
    try:
        limit = int(float(value))
    except ValueError:
        limit = 0
    if limit < 1:
        raise InputError(f"expected a positive number of pixels, got {value!r}", MAX_PIXELS_ENV)
    return limit


def _size_refusal(rows: int, cols: int) -> str | None:
    """Why an image of ``rows`` × ``cols`` is not decoded, or ``None`` when it fits the budget."""
    limit = max_pixels()
    if rows * cols <= limit:
        return None
    return (
        f"image of {rows}x{cols} pixels is larger than the {limit:,} pixels read; downscale the file, or raise the "
        f"budget with the environment variable {MAX_PIXELS_ENV}"
    )


class CXRImageError(InputError):
    """An image file that cannot be read as a 2D grayscale chest radiograph; the message names the file."""


def _check_image_header(ds: Dataset) -> tuple[str, str]:
    """Refuse anything that is not one 2D grayscale frame; return ``(pixel data keyword, photometric)``."""
    keyword = next((k for k in PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        raise Refusal(f"no pixel data ({sop_class(ds)}); not an image")
    required = ["Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation"]
    if keyword == "PixelData":  # float pixel data has no integer representation to declare
        required.append("PixelRepresentation")
    missing = [k for k in required if ds.get(k) in (None, "")]
    if missing:
        raise Refusal(f"incomplete image header (missing {', '.join(missing)})")
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    samples = int_tag(ds, "SamplesPerPixel", 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise Refusal(
            f"not a grayscale image (PhotometricInterpretation {photometric}, SamplesPerPixel {samples}); "
            "chest radiographs must be MONOCHROME1 or MONOCHROME2"
        )
    frames = int_tag(ds, "NumberOfFrames", 1)
    if frames < 1:
        raise Refusal(f"NumberOfFrames {frames}: the header declares no image")
    if frames > 1:
        raise Refusal(f"multi-frame DICOM ({frames} frames); expected a single 2D radiograph")
    rows, cols = int_tag(ds, "Rows", 0), int_tag(ds, "Columns", 0)
    if rows < 1 or cols < 1:
        raise Refusal(f"empty image (Rows {rows}, Columns {cols})")
    _check_size(rows, cols)
    return keyword, photometric


def _check_size(rows: int, cols: int) -> None:
    why = _size_refusal(rows, cols)
    if why:
        raise Refusal(why)


def _unusable_rescale(path: str, ds: Dataset) -> bool:
    """True (with a warning naming the file) when RescaleSlope/RescaleIntercept cannot map stored values: a slope
    that is not a finite positive number, or an intercept that is not finite. The stored values are used instead
    (the window then falls back to their full range); a NaN slope would otherwise turn every pixel into NaN."""
    if "ModalityLUTSequence" in ds or ("RescaleSlope" not in ds and "RescaleIntercept" not in ds):
        return False
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    try:
        slope = 1.0 if slope in (None, "") else float(slope)  # 0 is a value, not an absence
        intercept = 0.0 if intercept in (None, "") else float(intercept)
    except (TypeError, ValueError):
        return False  # malformed text: pydicom's own error is reported as an invalid rescale
    if np.isfinite(slope) and slope > 0 and np.isfinite(intercept):
        return False
    warnings.warn(
        f"{path}: ignoring RescaleSlope {slope} / RescaleIntercept {intercept} (not a finite positive scale); "
        "using the stored values",
        stacklevel=4,
    )
    return True


def read_dicom(path: str | os.PathLike, apply_window: bool = True) -> tuple[np.ndarray, dict]:
    """Read a 2D grayscale DICOM radiograph as an ``[H, W]`` float32 image in [0, 1], as displayed.

    Raises:
        CXRImageError: the file is not a readable single-frame grayscale image; the one-line message is
            ``"<path>: <reason>"`` (not DICOM, no pixel data, colour, multi-frame, truncated, no decoder, ...).
    """
    path = str(path)
    try:
        ds = read_dataset(path)
        keyword, photometric = _check_image_header(ds)
        stored = decode_pixels(ds, keyword)
        apply_modality_lut, _ = pixel_utils()
        try:  # rescale slope/intercept or modality LUT (signed data comes out signed)
            if _unusable_rescale(path, ds):
                values = stored.astype(np.float32)
            else:
                values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        except Exception as err:
            raise Refusal(f"invalid modality LUT or rescale ({type(err).__name__}: {err})") from err
        if not np.isfinite(values).all():  # float pixel data can hold NaN/inf; nothing sensible to display
            raise Refusal(f"{int((~np.isfinite(values)).sum())} pixel values are NaN or infinite")
        values, voi = apply_voi(path, ds, values, apply_window)
        meta = {
            "source_format": "dicom",
            "photometric_interpretation": photometric,
            "voi": voi,
            "modality": str(ds.get("Modality", "")),
            "view_position": str(ds.get("ViewPosition", "")),
            "pixel_spacing": pixel_spacing(ds),
            "bits_stored": int_tag(ds, "BitsStored", 0),
        }
    except Refusal as why:
        raise CXRImageError(f"{path}: {why}") from why
    if photometric == "MONOCHROME1":  # high stored value = dark: flip so bright means dense, as displayed
        values = 1.0 - values
    return values.astype(np.float32, copy=False), meta


def check_cxr_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a chest radiograph, from its header alone (no pixel is decoded), or ``None``.

    Checks what :func:`read_cxr` checks before decoding, with the same words: for DICOM (with or without the preamble)
    the image header, the size limit, the transfer syntax's decoder and the pixel data's length against
    Rows×Columns×frames×samples; for PNG/JPG/TIFF the header, the page count and the size limit. A file that passes
    can still fail to decode (corrupt compressed data) or be refused for its content (swapped Rows/Columns), which
    only decoding shows.
    """
    return inspect_cxr_file(path).problem


@dataclass(frozen=True)
class FileHeader:
    """What an image file's header says, read without decoding pixels.

    Attributes:
        problem: why the loader would refuse the file, or ``None``.
        shape: ``(rows, columns)`` as stored (before EXIF orientation), or ``None`` when unknown.
        lossy: the pixels are lossy-compressed (JPEG, JPEG 2000 or JPEG-LS near-lossless): fine for an image,
            wrong for a mask, whose edges it changes.
    """

    problem: str | None
    shape: tuple[int, int] | None = None
    lossy: bool = False


def inspect_cxr_file(path: str | os.PathLike) -> FileHeader:
    """:func:`check_cxr_file`'s verdict with the header's image size and compression (for the datalist check)."""
    path = str(path)
    if os.path.isdir(path):
        return FileHeader("is a directory, not an image file")
    if not os.path.isfile(path):
        return FileHeader("file not found")
    try:
        if not _is_dicom(path):
            from PIL import Image

            with Image.open(path) as img:  # parses the header only
                return FileHeader(_bitmap_refusal(img), (img.height, img.width), img.format in _LOSSY_FORMATS)
        ds = read_dataset(path, defer_size="64 KB")
        keyword, _ = _check_image_header(ds)
        shape = (int_tag(ds, "Rows", 0), int_tag(ds, "Columns", 0))
        syntax = transfer_syntax(ds)
        lossy = str(syntax) in _LOSSY_SYNTAXES or str(ds.get("LossyImageCompression", "")).strip() == "01"
        length = pixel_data_length(ds, keyword)
        try:
            compressed = syntax.is_compressed
        except ValueError:  # pydicom < 3 raises for private UIDs
            return FileHeader(f"cannot decode pixel data (unknown transfer syntax {syntax})", shape)
        if compressed or length is None:
            status = decoder_status(syntax)
            if status == "missing":
                return FileHeader(f"cannot decode pixel data ({syntax.name}); {DECODER_HINT}", shape, lossy)
            if status == "unsupported":
                why = f"cannot decode pixel data ({syntax.name}): pydicom has no decoder for this transfer syntax"
                return FileHeader(why, shape, lossy)
            return FileHeader(None, shape, lossy)
        check_pixel_length(ds, keyword, length)
        return FileHeader(None, shape, lossy)
    except Refusal as why:
        return FileHeader(str(why))
    except CXRImageError as err:
        return FileHeader(str(err).removeprefix(f"{path}: "))
    except Exception as err:  # noqa: BLE001 - any parser error means the header is unreadable
        return FileHeader(f"unreadable header ({type(err).__name__}: {err})".replace("\n", " "))


_LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000", "WEBP")
# JPEG baseline/extended, JPEG 2000 (lossy-capable), JPEG-LS near-lossless, JPEG XL, HEVC/H.264/MPEG video
_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.203",
}


def _bitmap_refusal(img) -> str | None:
    """Why an opened (not yet decoded) Pillow image is not read: over the pixel budget, or several pages."""
    pages = int(getattr(img, "n_frames", 1) or 1)
    if pages > 1:
        return f"{pages}-page {img.format or 'image'} file; expected a single 2D radiograph (one page)"
    return _size_refusal(img.height, img.width)


def read_bitmap(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a PNG/JPG/TIFF export as ``[H, W]`` float32 in [0, 1] (8 or 16 bit; colour converted to grey)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    try:
        with Image.open(path) as img:
            why = _bitmap_refusal(img)  # before decoding: the header gives the size and the page count
            if why:
                raise CXRImageError(f"{path}: {why}")
            img = ImageOps.exif_transpose(img)
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float32)
                scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
            else:
                if mode not in ("L", "1"):
                    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
                    if np.abs(rgb[..., 0] - rgb[..., 1]).max() > 8 or np.abs(rgb[..., 1] - rgb[..., 2]).max() > 8:
                        warnings.warn(f"{path}: colour image converted to grey; is this a radiograph?", stacklevel=3)
                arr = np.asarray(img.convert("L"), dtype=np.float32)
                scale = 255.0
    except CXRImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise CXRImageError(f"{path}: not a readable image file ({type(err).__name__}: {err})") from err
    arr /= np.float32(scale)  # in place: float32 throughout, one copy of the image
    return arr, {"source_format": Path(path).suffix.lower().lstrip("."), "pixel_spacing": [1.0, 1.0]}


def _is_dicom(path: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in BITMAP_SUFFIXES:
        return False
    if suffix in DICOM_SUFFIXES or not suffix:
        return True
    try:
        with open(path, "rb") as f:  # unknown suffix: look for the DICOM preamble marker
            head = f.read(132)
    except OSError as err:
        raise CXRImageError(f"{path}: cannot read file ({type(err).__name__}: {err})") from err
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


def read_cxr(
    path: str | os.PathLike, apply_window: bool = True, check_intensities: bool = True
) -> tuple[np.ndarray, dict]:
    """Read a DICOM, PNG or JPG chest radiograph as ``([H, W] float32 in [0, 1], meta)``.

    ``check_intensities`` warns about blank or saturated images; masks turn it off (blank is normal for them).
    """
    path = str(path)
    if os.path.isdir(path):
        raise CXRImageError(f"{path}: is a directory, not an image file")
    if not os.path.isfile(path):
        raise CXRImageError(f"{path}: file not found")
    if _is_dicom(path):
        image, meta = read_dicom(path, apply_window)
    elif Path(path).suffix.lower() in BITMAP_SUFFIXES:
        image, meta = read_bitmap(path)
    else:  # unknown suffix and no DICOM marker: Pillow gets a chance, but the reason should name both formats
        try:
            image, meta = read_bitmap(path)
        except CXRImageError as err:
            raise CXRImageError(f"{path}: not a DICOM file or a PNG/JPEG/TIFF image") from err
    if not np.isfinite(image).all():  # never expected past the readers' checks; never let one through
        raise CXRImageError(f"{path}: {int((~np.isfinite(image)).sum())} pixel values are NaN or infinite")
    if check_intensities:
        _check_intensities(path, image)
    meta.update({"filename_or_obj": path, "spatial_shape": np.asarray(image.shape)})
    return image, meta


class LoadCXRImage(Transform):
    """Load a chest radiograph file into a ``MetaTensor`` of shape ``[1, H, W]``, float32, in [0, 1].

    Args:
        apply_window: apply the DICOM VOI window / LUT when the file has one (otherwise min-max of the data).
        dtype: output dtype (``torch.uint8`` gives a compact cacheable image scaled to 0..255).
        check_intensities: warn about blank or saturated images (off for masks, which are often blank).
    """

    def __init__(
        self, apply_window: bool = True, dtype: torch.dtype = torch.float32, check_intensities: bool = True
    ) -> None:
        self.apply_window = apply_window
        self.dtype = dtype
        self.check_intensities = check_intensities

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        """Read ``path``; raise :class:`CXRImageError` naming the file when it cannot be used."""
        image, meta = read_cxr(path, self.apply_window, self.check_intensities)
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
        check_intensities: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCXRImage(apply_window=apply_window, dtype=dtype, check_intensities=check_intensities)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        """Load every key's file."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
