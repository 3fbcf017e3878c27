"""DICOM decoding behind :func:`~mflag_monai.transforms.io.read_dicom` and
:func:`~mflag_monai.transforms.io.check_cxr_file`: reading the data set, the pixel data's length and transfer syntax,
decoding with the BitsStored mask, the orientation check, the VOI window or LUT and the pixel spacing.

Each check raises :class:`Refusal` with the reason; :mod:`~mflag_monai.transforms.io` turns it into a
:class:`~mflag_monai.transforms.io.CXRImageError` naming the file. Its interface to ``mflag_monai.transforms.io`` is ``__all__``.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: pydicom is imported inside the functions that use it
    from pydicom.dataset import Dataset
    from pydicom.uid import UID

__all__ = [
    "DECODER_HINT",
    "PIXEL_KEYWORDS",
    "Refusal",
    "apply_voi",
    "check_pixel_length",
    "decode_pixels",
    "decoder_status",
    "int_tag",
    "pixel_data_length",
    "pixel_spacing",
    "pixel_utils",
    "read_dataset",
    "sop_class",
    "transfer_syntax",
]

logger = logging.getLogger("mflag_monai.transforms.io")  # the logger these messages always had

# Transfer syntaxes and the plugin that decodes them, for the error message when pixel data cannot be decoded.
DECODER_HINT = (
    "install the decoder plugins: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle "
    "(or python-gdcm)"
)


def pixel_utils():
    """``apply_modality_lut`` and ``apply_voi_lut`` on pydicom 3 (``pydicom.pixels``) and 2.4 (``pixel_data_handlers``)."""
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    return apply_modality_lut, apply_voi_lut


class Refusal(Exception):
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


def int_tag(ds: Dataset, keyword: str, default: int) -> int:
    """An integer attribute, ``default`` when absent or empty; a malformed value (e.g. IS ``'1A'``) is refused."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise Refusal(f"malformed header ({keyword} {str(value)!r} is not an integer)") from err


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1]."""
    if not (np.isfinite(center) and np.isfinite(width)):  # "NaN"/"inf" parse as floats and would poison every pixel
        raise ValueError(f"WindowCenter {center} / WindowWidth {width} are not finite")
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


def read_dataset(path: str, defer_size: str | None = None) -> Dataset:
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
        raise Refusal(f"not a readable DICOM file ({type(err).__name__}: {err})") from err
    if not _starts_like_a_data_set(path):  # a forced parse of megabytes of zeros takes tens of seconds
        raise Refusal("not a DICOM file (no 'DICM' marker and no DICOM data elements)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a forced read of a non-DICOM file warns about nonsense VRs
            ds = pydicom.dcmread(path, force=True, defer_size=defer_size)
        # forced parsing of any byte stream "succeeds"; only standard identifying elements make it DICOM
        is_dicom = any(k in ds for k in ("SOPClassUID", "PixelData", "Modality", "StudyInstanceUID"))
    except Exception:  # noqa: BLE001  (whatever a forced parse raises, the file is not DICOM)
        is_dicom = False
    if not is_dicom:
        raise Refusal("not a DICOM file (no 'DICM' marker and no DICOM data elements)")
    return ds


def _starts_like_a_data_set(path: str) -> bool:
    """Whether a file without the 'DICM' marker starts as a bare data set does: with an element of group 0002
    (file meta), 0004 or 0008 (identification), in either byte order. Checked before a forced parse, which accepts
    any bytes and takes tens of seconds to walk a large file of zeros."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if len(head) < 4:
        return False
    groups = {int.from_bytes(head[:2], "little"), int.from_bytes(head[:2], "big")}
    return bool(groups & {0x0002, 0x0004, 0x0008})


def sop_class(ds: Dataset) -> str:
    """The SOP class name (e.g. ``Basic Text SR Storage``), from the data set or the file meta."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else ""))
    return f"SOP class {UID(uid).name}" if uid else "no SOP class"


PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def pixel_data_length(ds: Dataset, keyword: str) -> int | None:
    """Bytes of the pixel data element without reading it (``None``: encapsulated, i.e. compressed)."""
    element = ds.get_item(keyword)  # a raw element when the value is still unread (``defer_size``)
    length = getattr(element, "length", None)
    if length is None:  # already converted: the value is in memory
        length = len(ds[keyword].value or b"")
    return None if length == 0xFFFFFFFF else int(length)


def check_pixel_length(ds: Dataset, keyword: str, have: int) -> None:
    """Refuse uncompressed pixel data whose length does not fit Rows×Columns×frames×samples×bits.

    Shorter is a truncated file; longer means the header describes only part of the data (frames without
    NumberOfFrames, colour bytes labelled monochrome, a wrong Rows/Columns): reading the first frame's worth of bytes
    would be silently wrong. A tail under a tenth of the image is taken for padding (as pydicom does) and ignored.
    """
    rows, cols = int_tag(ds, "Rows", 0), int_tag(ds, "Columns", 0)
    frames, samples = int_tag(ds, "NumberOfFrames", 1), int_tag(ds, "SamplesPerPixel", 1)
    need = _expected_bytes(ds, keyword) * frames * samples
    if have < need:
        raise Refusal(f"truncated pixel data ({have} of {need} bytes)")
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
        raise Refusal(f"pixel data holds {have} bytes, more than the {need} of {shape}{guess}")


def transfer_syntax(ds: Dataset) -> UID:
    """The transfer syntax; for a bare data set without one, the uncompressed syntax it was read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(str(syntax))
    if "PixelData" in ds and getattr(ds["PixelData"], "is_undefined_length", False):  # encapsulated
        raise Refusal("compressed pixel data but no TransferSyntaxUID in the file meta; cannot tell the codec")
    # uncompressed pixel data is encoded like the data set itself, which pydicom detected while reading
    implicit, little = getattr(ds, "original_encoding", None) or (ds.is_implicit_VR, ds.is_little_endian)
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    return syntax


def decoder_status(syntax: UID) -> str:
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
    pixels = int_tag(ds, "Rows", 0) * int_tag(ds, "Columns", 0)
    bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword) or int_tag(ds, "BitsAllocated", 0)
    return (pixels * bits + 7) // 8


def decode_pixels(ds: Dataset, keyword: str) -> np.ndarray:
    """The stored pixel values as a 2D array, refusing truncated data and syntaxes without a decoder."""
    syntax = transfer_syntax(ds)
    try:
        known = syntax.is_transfer_syntax
    except ValueError:  # pydicom < 3 raises for private UIDs
        known = False
    if not known:
        raise Refusal(f"cannot decode pixel data (unknown transfer syntax {syntax})")
    if syntax.is_compressed:
        status = decoder_status(syntax)
        if status == "missing":
            raise Refusal(f"cannot decode pixel data ({syntax.name}); {DECODER_HINT}")
        if status == "unsupported":
            raise Refusal(f"cannot decode pixel data ({syntax.name}): pydicom has no decoder for this transfer syntax")
    else:  # check the length up front: pydicom's own message is long, and a wrong length must not load silently
        check_pixel_length(ds, keyword, len(ds[keyword].value or b""))
    try:
        stored = ds.pixel_array
    except Exception as err:  # the plugin is installed, so the data itself is damaged or exotic
        raise Refusal(f"cannot decode pixel data ({syntax.name}): {type(err).__name__}: {err}") from err
    if stored.ndim != 2:
        raise Refusal(f"pixel data has shape {tuple(stored.shape)}; expected a 2D image")
    _check_orientation(stored)
    return _mask_to_bits_stored(stored, ds, keyword)


def _mask_to_bits_stored(stored: np.ndarray, ds: Dataset, keyword: str) -> np.ndarray:
    """Keep the low BitsStored bits of integer pixel data (PS3.5 8.1.1): the bits above may hold overlays or garbage,
    and one stray high value would otherwise stretch the display range until the image is black."""
    bits_stored, bits_allocated = int_tag(ds, "BitsStored", 0), int_tag(ds, "BitsAllocated", 0)
    if keyword != "PixelData" or not 0 < bits_stored < bits_allocated or stored.dtype.kind not in "iu":
        return stored
    mask, half = (1 << bits_stored) - 1, 1 << (bits_stored - 1)
    signed = int_tag(ds, "PixelRepresentation", 0) == 1
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
        raise Refusal(
            f"pixel data does not fit Rows {rows} x Columns {cols}: laid out {cols} rows of {rows} it is a smoother "
            "image, so the header has Rows and Columns swapped"
        )


def apply_voi(path: str, ds: Dataset, values: np.ndarray, apply_window: bool) -> tuple[np.ndarray, str]:
    """Apply the VOI LUT or window to [0, 1]; without one (or with a broken one) stretch the data range."""
    _, apply_voi_lut = pixel_utils()
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


def pixel_spacing(ds: Dataset) -> list[float]:
    """Row and column spacing in mm; ``[1, 1]`` when absent or malformed (spacing is metadata, not a refusal)."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        values = [float(s) for s in spacing][:2] if spacing else []
    except (TypeError, ValueError):
        values = []
    return values if len(values) == 2 and all(np.isfinite(values)) and min(values) > 0 else [1.0, 1.0]
