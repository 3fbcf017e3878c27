"""Reading chest radiographs the way a radiologist views them.

MONAI's readers do not fit chest X-ray DICOM as it comes from PACS (SPEC §4): ``PydicomReader`` applies the rescale
but neither inverts MONOCHROME1 nor applies the VOI window, and swaps the axes; ``ITKReader`` inverts MONOCHROME1
but returns ``(W, H, 1)`` and ignores windowing. So the photometric chain lives here, in one place:

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
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from ..utils.errors import InputError
from ..utils.formats import BITMAP_SUFFIXES, DICOM_SUFFIXES

if TYPE_CHECKING:  # annotations only: pydicom is imported inside the functions that use it
    from pydicom.dataset import Dataset
    from pydicom.uid import UID

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_PIXELS",
    "CXRImageError",
    "LoadCXRImage",
    "LoadCXRImaged",
    "check_cxr_file",
    "read_bitmap",
    "read_cxr",
    "read_dicom",
]

#: Largest image read (rows × columns): 8192², four times the largest chest radiograph detectors (~4300²). Larger
#: files are refused before decoding (a 12000² image would cost gigabytes in the transform chain).
MAX_PIXELS = 8192 * 8192

# Transfer syntaxes and the plugin that decodes them, for the error message when pixel data cannot be decoded.
_DECODER_HINT = (
    "install the decoder plugins: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle "
    "(or python-gdcm)"
)


class CXRImageError(InputError):
    """An image file that cannot be read as a 2D grayscale chest radiograph; the message names the file."""


def _pixel_utils():
    """``apply_modality_lut`` and ``apply_voi_lut`` on pydicom 3 (``pydicom.pixels``) and 2.4 (``pixel_data_handlers``)."""
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    return apply_modality_lut, apply_voi_lut


class _Refusal(Exception):
    """Why a DICOM file cannot be used; :func:`read_dicom` turns it into a :class:`CXRImageError` naming the file."""

    def __init__(self, reason: str) -> None:
        # one line, whatever the source: decoder plugins report one failure per line
        lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
        super().__init__("; ".join(lines).replace(":; ", ": "))


def _first(value) -> float:
    """First value of a possibly multi-valued DICOM number (WindowCenter can hold several presets)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def _int_tag(ds: Dataset, keyword: str, default: int) -> int:
    """An integer attribute, ``default`` when absent or empty; a malformed value (e.g. IS ``'1A'``) is refused."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise _Refusal(f"malformed header ({keyword} {str(value)!r} is not an integer)") from err


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1]."""
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError("WindowWidth must be > 0 for a SIGMOID window")
        return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32, copy=False)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError("WindowWidth must be > 0 for a LINEAR_EXACT window")
        lo, hi = center - width / 2.0, center + width / 2.0
    else:  # LINEAR: the standard's half-pixel offsets
        if width < 1:
            raise ValueError("WindowWidth must be >= 1 for a LINEAR window")
        lo, hi = center - 0.5 - (width - 1) / 2.0, center - 0.5 + (width - 1) / 2.0
    out = np.subtract(x, lo, dtype=np.float32)  # one float32 copy, scaled and clipped in place
    out /= np.float32(max(hi - lo, 1e-6))
    return np.clip(out, 0.0, 1.0, out=out)


def _min_max(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    x = x - np.float32(lo)  # a new float32 array; the in-place division below adds no copy
    x /= np.float32(hi - lo)
    return x


def _read_dataset(path: str, defer_size: str | None = None) -> Dataset:
    """``pydicom.dcmread``, falling back to ``force=True`` for data sets written without the preamble/meta header.

    ``defer_size`` leaves larger values (the pixel data) unread until used: their length is still known.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, defer_size=defer_size)
    except InvalidDicomError:
        pass  # no 'DICM' marker: older exports write the bare data set, which is still DICOM
    except Exception as err:  # pydicom raises several types for broken headers
        raise _Refusal(f"not a readable DICOM file ({type(err).__name__}: {err})") from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a forced read of a non-DICOM file warns about nonsense VRs
            ds = pydicom.dcmread(path, force=True, defer_size=defer_size)
        # forced parsing of any byte stream "succeeds"; only standard identifying elements make it DICOM
        is_dicom = any(k in ds for k in ("SOPClassUID", "PixelData", "Modality", "StudyInstanceUID"))
    except Exception:  # noqa: BLE001  (whatever a forced parse raises, the file is not DICOM)
        is_dicom = False
    if not is_dicom:
        raise _Refusal("not a DICOM file (no 'DICM' marker and no DICOM data elements)")
    return ds


def _sop_class(ds: Dataset) -> str:
    """The SOP class name (e.g. ``Basic Text SR Storage``), from the data set or the file meta."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else ""))
    return f"SOP class {UID(uid).name}" if uid else "no SOP class"


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _check_image_header(ds: Dataset) -> tuple[str, str]:
    """Refuse anything that is not one 2D grayscale frame; return ``(pixel data keyword, photometric)``."""
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        raise _Refusal(f"no pixel data ({_sop_class(ds)}); not an image")
    required = ["Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation"]
    if keyword == "PixelData":  # float pixel data has no integer representation to declare
        required.append("PixelRepresentation")
    missing = [k for k in required if ds.get(k) in (None, "")]
    if missing:
        raise _Refusal(f"incomplete image header (missing {', '.join(missing)})")
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    samples = _int_tag(ds, "SamplesPerPixel", 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _Refusal(
            f"not a grayscale image (PhotometricInterpretation {photometric}, SamplesPerPixel {samples}); "
            "chest radiographs must be MONOCHROME1 or MONOCHROME2"
        )
    frames = _int_tag(ds, "NumberOfFrames", 1)
    if frames > 1:
        raise _Refusal(f"multi-frame DICOM ({frames} frames); expected a single 2D radiograph")
    rows, cols = _int_tag(ds, "Rows", 0), _int_tag(ds, "Columns", 0)
    if rows < 1 or cols < 1:
        raise _Refusal(f"empty image (Rows {rows}, Columns {cols})")
    _check_size(rows, cols)
    return keyword, photometric


def _check_size(rows: int, cols: int) -> None:
    if rows * cols > MAX_PIXELS:
        raise _Refusal(
            f"image of {rows}x{cols} pixels is larger than the {MAX_PIXELS:,} pixels read "
            "(mflag_monai.transforms.io.MAX_PIXELS); downscale the file"
        )


def _pixel_data_length(ds: Dataset, keyword: str) -> int | None:
    """Bytes of the pixel data element without reading it (``None``: encapsulated, i.e. compressed)."""
    element = ds.get_item(keyword)  # a raw element when the value is still unread (``defer_size``)
    length = getattr(element, "length", None)
    if length is None:  # already converted: the value is in memory
        length = len(ds[keyword].value or b"")
    return None if length == 0xFFFFFFFF else int(length)


def _check_pixel_length(ds: Dataset, keyword: str, have: int) -> None:
    """Refuse uncompressed pixel data whose length does not fit Rows×Columns×frames×samples×bits.

    Shorter is a truncated file; longer means the header describes only part of the data (frames without
    NumberOfFrames, colour bytes labelled monochrome, a wrong Rows/Columns): reading the first frame's worth of bytes
    would be silently wrong. A tail under a tenth of the image is taken for padding (as pydicom does) and ignored.
    """
    rows, cols = _int_tag(ds, "Rows", 0), _int_tag(ds, "Columns", 0)
    frames, samples = _int_tag(ds, "NumberOfFrames", 1), _int_tag(ds, "SamplesPerPixel", 1)
    need = _expected_bytes(ds, keyword) * frames * samples
    if have < need:
        raise _Refusal(f"truncated pixel data ({have} of {need} bytes)")
    if have <= need + max(need % 2, need // 10):
        if have > need + (need % 2):  # pydicom reads the image and drops the tail (e.g. its MR_small_padded.dcm)
            logger.warning("%d bytes of padding after the pixel data (%d bytes expected); ignored", have - need, need)
        return
    if have > need:
        shape = f"Rows×Columns×frames×samples {rows}×{cols}×{frames}×{samples}"
        ratio = have / need
        guess = ""
        if ratio == int(ratio):
            guess = (
                f": {int(ratio)} times one image's bytes, i.e. {int(ratio)} frames without NumberOfFrames, or "
                f"{int(ratio)} samples (colour) labelled {str(ds.get('PhotometricInterpretation', '')).strip()}"
            )
        raise _Refusal(f"pixel data holds {have} bytes, more than the {need} of {shape}{guess}")


def _transfer_syntax(ds: Dataset) -> UID:
    """The transfer syntax; for a bare data set without one, the uncompressed syntax it was read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(str(syntax))
    if "PixelData" in ds and getattr(ds["PixelData"], "is_undefined_length", False):  # encapsulated
        raise _Refusal("compressed pixel data but no TransferSyntaxUID in the file meta; cannot tell the codec")
    # uncompressed pixel data is encoded like the data set itself, which pydicom detected while reading
    implicit, little = getattr(ds, "original_encoding", None) or (ds.is_implicit_VR, ds.is_little_endian)
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    return syntax


def _decoder_status(syntax: UID) -> str:
    """``'available'``, ``'missing'`` (pydicom knows a plugin that is not installed) or ``'unsupported'``."""
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom < 3: ask the pixel data handlers
        from pydicom import config

        handlers = [h for h in config.pixel_data_handlers if h.supports_transfer_syntax(syntax)]
        if not handlers:
            return "unsupported"
        return "available" if any(h.is_available() for h in handlers) else "missing"
    try:
        return "available" if get_decoder(syntax).is_available else "missing"
    except NotImplementedError:
        return "unsupported"


def _expected_bytes(ds: Dataset, keyword: str) -> int:
    """Length of uncompressed single-frame pixel data (1-bit data is packed 8 pixels to a byte)."""
    pixels = _int_tag(ds, "Rows", 0) * _int_tag(ds, "Columns", 0)
    bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword) or _int_tag(ds, "BitsAllocated", 0)
    return (pixels * bits + 7) // 8


def _decode(ds: Dataset, keyword: str) -> np.ndarray:
    """The stored pixel values as a 2D array, refusing truncated data and syntaxes without a decoder."""
    syntax = _transfer_syntax(ds)
    try:
        known = syntax.is_transfer_syntax
    except ValueError:  # pydicom < 3 raises for private UIDs
        known = False
    if not known:
        raise _Refusal(f"cannot decode pixel data (unknown transfer syntax {syntax})")
    if syntax.is_compressed:
        status = _decoder_status(syntax)
        if status == "missing":
            raise _Refusal(f"cannot decode pixel data ({syntax.name}); {_DECODER_HINT}")
        if status == "unsupported":
            raise _Refusal(f"cannot decode pixel data ({syntax.name}): pydicom has no decoder for this transfer syntax")
    else:  # check the length up front: pydicom's own message is long, and a wrong length must not load silently
        _check_pixel_length(ds, keyword, len(ds[keyword].value or b""))
    try:
        stored = ds.pixel_array
    except Exception as err:  # the plugin is installed, so the data itself is damaged or exotic
        raise _Refusal(f"cannot decode pixel data ({syntax.name}): {type(err).__name__}: {err}") from err
    if stored.ndim != 2:
        raise _Refusal(f"pixel data has shape {tuple(stored.shape)}; expected a 2D image")
    _check_orientation(stored)
    return _mask_to_bits_stored(stored, ds, keyword)


def _mask_to_bits_stored(stored: np.ndarray, ds: Dataset, keyword: str) -> np.ndarray:
    """Keep the low BitsStored bits of integer pixel data (PS3.5 8.1.1): the bits above may hold overlays or garbage,
    and one stray high value would otherwise stretch the display range until the image is black."""
    bits_stored, bits_allocated = _int_tag(ds, "BitsStored", 0), _int_tag(ds, "BitsAllocated", 0)
    if keyword != "PixelData" or not 0 < bits_stored < bits_allocated or stored.dtype.kind not in "iu":
        return stored
    mask, half = (1 << bits_stored) - 1, 1 << (bits_stored - 1)
    signed = _int_tag(ds, "PixelRepresentation", 0) == 1
    low, high = (-half, half - 1) if signed else (0, mask)
    if int(stored.min()) >= low and int(stored.max()) <= high:  # the common case: nothing to mask, no copy
        return stored
    if signed:  # two's complement in BitsStored bits: keep them, then sign-extend
        values = stored.astype(np.int32) & mask
        values[values >= half] -= 1 << bits_stored
    else:
        values = stored & stored.dtype.type(mask)
    changed = int(np.count_nonzero(values != stored))
    logger.warning("%d pixel values had bits set above BitsStored %d; masked off", changed, bits_stored)
    return values.astype(stored.dtype, copy=False)  # the masked values fit the stored type


def _roughness(flat: np.ndarray, width: int, rows: int = 256) -> float:
    """Mean absolute difference between neighbouring pixels (vertical plus horizontal) of ``flat`` laid out ``width``
    wide, over a band of ``rows`` rows from the middle (cheap on large images)."""
    height = flat.size // width
    start = max(0, height // 2 - rows // 2) * width
    band = flat[start : start + min(rows, height) * width].reshape(-1, width).astype(np.float32)
    return float(np.abs(np.diff(band, axis=0)).mean() + np.abs(np.diff(band, axis=1)).mean())


def _check_orientation(stored: np.ndarray) -> None:
    """Refuse pixel data whose Rows and Columns are swapped in the header.

    A radiograph is smoother in its true layout than in any other: the same bytes laid out the wrong width put
    unrelated pixels side by side (or, for a width that divides the true one, several image rows in one row, with a
    jump at each seam). When the swapped layout is clearly smoother than the header's, the header is wrong. Square
    images cannot tell, and noise-like images (both layouts equally rough) never trigger.
    """
    rows, cols = stored.shape
    if rows == cols or min(rows, cols) < 8:
        return
    flat = stored.reshape(-1)
    as_given, swapped = _roughness(flat, cols), _roughness(flat, rows)
    if as_given > 1.3 * max(swapped, 1e-6):
        raise _Refusal(
            f"pixel data does not fit Rows {rows} x Columns {cols}: laid out {cols} rows of {rows} it is a smoother "
            "image, so the header has Rows and Columns swapped"
        )


def _voi(path: str, ds: Dataset, values: np.ndarray, apply_window: bool) -> tuple[np.ndarray, str]:
    """Apply the VOI LUT or window to [0, 1]; without one (or with a broken one) stretch the data range."""
    _, apply_voi_lut = _pixel_utils()
    try:
        if apply_window and "VOILUTSequence" in ds and len(ds.VOILUTSequence):
            indices = np.rint(values).astype(np.int64)  # a LUT is indexed by integer modality values
            return _min_max(np.asarray(apply_voi_lut(indices, ds, index=0), dtype=np.float32)), "lut"
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if apply_window and center not in (None, "") and width not in (None, ""):
            function = str(ds.get("VOILUTFunction", "") or "")
            return _window(values, _first(center), _first(width), function), "window"
    except Exception as err:  # noqa: BLE001  (a bad presentation tag must not lose good pixels)
        warnings.warn(f"{path}: ignoring invalid VOI window/LUT ({type(err).__name__}: {err})", stacklevel=4)
    return _min_max(values), "none"


def _pixel_spacing(ds: Dataset) -> list[float]:
    """Row and column spacing in mm; ``[1, 1]`` when absent or malformed (spacing is metadata, not a refusal)."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        values = [float(s) for s in spacing][:2] if spacing else []
    except (TypeError, ValueError):
        values = []
    return values if len(values) == 2 and all(np.isfinite(values)) and min(values) > 0 else [1.0, 1.0]


def read_dicom(path: str | os.PathLike, apply_window: bool = True) -> tuple[np.ndarray, dict]:
    """Read a 2D grayscale DICOM radiograph as an ``[H, W]`` float32 image in [0, 1], as displayed.

    Raises:
        CXRImageError: the file is not a readable single-frame grayscale image; the one-line message is
            ``"<path>: <reason>"`` (not DICOM, no pixel data, colour, multi-frame, truncated, no decoder, ...).
    """
    path = str(path)
    try:
        ds = _read_dataset(path)
        keyword, photometric = _check_image_header(ds)
        stored = _decode(ds, keyword)
        apply_modality_lut, _ = _pixel_utils()
        try:  # rescale slope/intercept or modality LUT (signed data comes out signed)
            values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        except Exception as err:
            raise _Refusal(f"invalid modality LUT or rescale ({type(err).__name__}: {err})") from err
        if not np.isfinite(values).all():  # float pixel data can hold NaN/inf; nothing sensible to display
            raise _Refusal(f"{int((~np.isfinite(values)).sum())} pixel values are NaN or infinite")
        values, voi = _voi(path, ds, values, apply_window)
        meta = {
            "source_format": "dicom",
            "photometric_interpretation": photometric,
            "voi": voi,
            "modality": str(ds.get("Modality", "")),
            "view_position": str(ds.get("ViewPosition", "")),
            "pixel_spacing": _pixel_spacing(ds),
            "bits_stored": _int_tag(ds, "BitsStored", 0),
        }
    except _Refusal as why:
        raise CXRImageError(f"{path}: {why}") from why
    if photometric == "MONOCHROME1":  # high stored value = dark: flip so bright means dense, as displayed
        values = 1.0 - values
    return values.astype(np.float32, copy=False), meta


def check_cxr_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a chest radiograph, from its header alone (no pixel is decoded), or ``None``.

    Checks what :func:`read_cxr` checks before decoding, with the same words: for DICOM (with or without the preamble)
    the image header, the size limit, the transfer syntax's decoder and the pixel data's length against
    Rows×Columns×frames×samples; for PNG/JPG the header and the size limit. A file that passes can still fail to
    decode (corrupt compressed data) or be refused for its content (swapped Rows/Columns), which only decoding shows.
    """
    path = str(path)
    if os.path.isdir(path):
        return "is a directory, not an image file"
    if not os.path.isfile(path):
        return "file not found"
    try:
        if not _is_dicom(path):
            from PIL import Image

            with Image.open(path) as img:  # parses the header only
                if img.width * img.height > MAX_PIXELS:
                    return (
                        f"image of {img.height}x{img.width} pixels is larger than the {MAX_PIXELS:,} pixels read "
                        "(mflag_monai.transforms.io.MAX_PIXELS); downscale the file"
                    )
            return None
        ds = _read_dataset(path, defer_size="64 KB")
        keyword, _ = _check_image_header(ds)
        syntax = _transfer_syntax(ds)
        length = _pixel_data_length(ds, keyword)
        try:
            compressed = syntax.is_compressed
        except ValueError:  # pydicom < 3 raises for private UIDs
            return f"cannot decode pixel data (unknown transfer syntax {syntax})"
        if compressed or length is None:
            status = _decoder_status(syntax)
            if status == "missing":
                return f"cannot decode pixel data ({syntax.name}); {_DECODER_HINT}"
            if status == "unsupported":
                return f"cannot decode pixel data ({syntax.name}): pydicom has no decoder for this transfer syntax"
            return None
        _check_pixel_length(ds, keyword, length)
        return None
    except _Refusal as why:
        return str(why)
    except CXRImageError as err:
        return str(err).removeprefix(f"{path}: ")
    except Exception as err:  # noqa: BLE001 - any parser error means the header is unreadable
        return f"unreadable header ({type(err).__name__}: {err})".replace("\n", " ")


def read_bitmap(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a PNG/JPG/TIFF export as ``[H, W]`` float32 in [0, 1] (8 or 16 bit; colour converted to grey)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:  # before decoding: the header gives the size
                raise CXRImageError(
                    f"{path}: image of {img.height}x{img.width} pixels is larger than the {MAX_PIXELS:,} pixels read "
                    "(mflag_monai.transforms.io.MAX_PIXELS); downscale the file"
                )
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
