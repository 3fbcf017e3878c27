"""The loader over pydicom's own test corpus: every file either loads as displayed or is refused in one line.

``pydicom.data.get_testdata_files()`` holds real-world oddities (colour, palette, YBR, multi-frame, big endian,
1-bit, 32-bit, signed, every common compressed transfer syntax, DICOMDIR, SR, RT, truncated and malformed files,
non-DICOM files and folders). Its default pattern lists only the files shipped inside pydicom, so nothing is
downloaded and the corpus is the same on every machine with the same pydicom.
"""

from __future__ import annotations

import re
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file, get_testdata_files

from helpers.dicom import write_dicom
from mflag_monai.transforms import CXRImageError, LoadCXRImage

ROOT = Path(get_testdata_file("MR_small.dcm")).parent  # .../pydicom/data/test_files

# First words of each refusal reason -> the category reported in the summary line.
REASONS = [
    ("not a grayscale image", "colour/palette"),
    ("multi-frame DICOM", "multi-frame"),
    ("pixel data has shape", "not 2D"),
    ("no pixel data", "no pixel data"),
    ("truncated pixel data", "truncated"),
    ("cannot decode pixel data", "cannot decode"),
    ("incomplete image header", "malformed header"),
    ("malformed header", "malformed header"),
    ("not a DICOM file", "not DICOM"),
    ("is a directory", "directory"),
]


def _rel(path: str) -> str:
    return Path(path).relative_to(ROOT).as_posix()


def _category(reason: str) -> str:
    return next((label for prefix, label in REASONS if reason.startswith(prefix)), "other")


@pytest.fixture(scope="module")
def corpus() -> dict[str, tuple[str, object]]:
    """``relative path -> ("load", MetaTensor) | ("refuse", message)`` for every entry of the corpus."""
    paths = sorted(get_testdata_files())
    assert len(paths) > 150, "pydicom's test corpus looks incomplete"
    loader, outcomes = LoadCXRImage(), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about its deliberately odd files; blank-image warnings too
        for path in paths:
            try:
                outcomes[_rel(path)] = ("load", loader(path))
            except CXRImageError as err:
                outcomes[_rel(path)] = ("refuse", str(err))
            # any other exception propagates and fails every test that uses the corpus
    return outcomes


def _pydicom_grayscale_2d(path: str) -> np.ndarray | None:
    """Independent oracle: the stored pixels when plain pydicom reads a single-frame 2D grayscale image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corpus's odd files make pydicom warn
        try:
            ds = pydicom.dcmread(path)
            if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
                return None
            if ds.get("SamplesPerPixel") != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
                return None
            arr = ds.pixel_array
        except Exception:
            return None
    return arr if arr.ndim == 2 else None


def _displayed(path: str) -> np.ndarray:
    """The DICOM display chain written out from the standard (PS3.3 C.11.1-2), for files with a plain rescale."""
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MR_small_padded: pydicom notes the excess padding it drops
        stored = ds.pixel_array.astype(np.float64)
    value = stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    if ds.get("WindowCenter") is not None:
        first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)  # noqa: E731
        c, w = first(ds.WindowCenter), first(ds.WindowWidth)
        out = np.clip((value - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    else:
        out = (value - value.min()) / max(value.max() - value.min(), 1e-12)
    return 1.0 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


def test_every_corpus_file_loads_or_is_refused_in_one_line(corpus) -> None:
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    for rel, (kind, value) in corpus.items():
        path = str(ROOT / rel)
        if kind == "load":
            img = value
            assert img.ndim == 3 and img.shape[0] == 1 and min(img.shape[1:]) >= 1, rel
            assert img.dtype == torch.float32, rel
            assert bool(torch.isfinite(img).all()), rel
            assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0, rel
            counts["loaded"] += 1
        else:
            message = value
            assert message.startswith(f"{path}: "), f"{rel}: refusal must start with the path: {message!r}"
            assert "\n" not in message and "\r" not in message, f"{rel}: refusal must be one line: {message!r}"
            reason = message[len(path) + 2 :]
            assert len(reason) > 5, rel
            counts[f"refused: {_category(reason)}"] += 1
    assert counts["loaded"] >= 40 and sum(counts.values()) == len(corpus)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(
        f"\npydicom {pydicom.__version__} corpus: {len(corpus)} entries: {summary} ({time.perf_counter() - start:.2f} s)"
    )


def test_loader_agrees_with_plain_pydicom(corpus) -> None:
    """Every file pydicom decodes as one 2D grayscale frame loads, with the display chain applied; no other file does."""
    for rel, (kind, value) in corpus.items():
        path = str(ROOT / rel)
        stored = _pydicom_grayscale_2d(path) if (ROOT / rel).is_file() else None
        if stored is None:
            assert kind == "refuse", f"{rel} loaded, but pydicom does not read it as a 2D grayscale image"
            continue
        assert kind == "load", f"{rel} should load: {value}"
        assert tuple(value.shape) == (1, *stored.shape), rel  # rows stay rows
        assert np.allclose(value[0].numpy(), _displayed(path), atol=1e-5), rel


def _outcome(corpus, rel: str) -> tuple[str, object]:
    if rel not in corpus:  # the corpus grows with pydicom (2.4 lacks the JPEG-LS near-lossless and examples_* files)
        pytest.skip(f"{rel} is not shipped with pydicom {pydicom.__version__}")
    return corpus[rel]


def _refusal(corpus, rel: str) -> str:
    kind, value = _outcome(corpus, rel)
    assert kind == "refuse", f"{rel} should be refused"
    return value[len(str(ROOT / rel)) + 2 :]


@pytest.mark.parametrize("rel", ["dicomdirtests/77654033/CR1/6154", "dicomdirtests/77654033/CR2/6247"])
def test_monochrome1_cr_is_inverted(corpus, rel: str) -> None:
    kind, img = _outcome(corpus, rel)
    assert kind == "load" and img.meta["photometric_interpretation"] == "MONOCHROME1" and img.meta["voi"] == "window"
    stored = pydicom.dcmread(ROOT / rel).pixel_array.astype(np.float64).ravel()
    shown = img[0].numpy().astype(np.float64).ravel()
    order = np.argsort(stored, kind="stable")
    assert np.all(np.diff(shown[order]) <= 1e-6)  # higher stored value = darker on screen
    assert np.corrcoef(stored, shown)[0, 1] < -0.99


@pytest.mark.parametrize(
    "rel",
    [
        "MR_small_RLE.dcm",  # RLE Lossless
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
        "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_padded.dcm",
    ],
)
def test_encoded_twin_equals_uncompressed(corpus, rel: str) -> None:
    kind, img = _outcome(corpus, rel)
    _, ref = _outcome(corpus, "MR_small.dcm")
    assert kind == "load" and img.meta["voi"] == "window"
    assert torch.allclose(img, ref, atol=1e-6)


@pytest.mark.parametrize(
    "rel, twin",
    [
        ("rtdose_rle_1frame.dcm", "rtdose_1frame.dcm"),
        ("rtdose_expb_1frame.dcm", "rtdose_1frame.dcm"),
        ("liver_expb_1frame.dcm", "liver_1frame.dcm"),
    ],
)
def test_32bit_and_1bit_twins(corpus, rel: str, twin: str) -> None:
    (kind, img), (_, ref) = _outcome(corpus, rel), _outcome(corpus, twin)
    assert kind == "load" and torch.equal(img, ref)


@pytest.mark.parametrize(
    "rel",
    [
        "JPEG2000.dcm",  # JPEG 2000 (lossy), signed
        "693_J2KI.dcm",  # JPEG 2000, signed CT with rescale and window
        "J2K_pixelrep_mismatch.dcm",  # JPEG 2000 Lossless whose codestream sign disagrees with the header
        "JPGExtended.dcm",  # JPEG Extended, 12 bit
        "JPEGLSNearLossless_08.dcm",
        "JPEGLSNearLossless_16.dcm",  # JPEG-LS near-lossless
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "image_dfl.dcm",  # Deflated Explicit VR Little Endian
    ],
)
def test_compressed_grayscale_loads(corpus, rel: str) -> None:
    kind, img = _outcome(corpus, rel)
    assert kind == "load", img
    assert float(img.max() - img.min()) > 0.1  # an image, not a flat decode failure


def test_lossy_jpeg2000_matches_its_jpeg_extended_version(corpus) -> None:
    (_, j2k), (_, jpg) = _outcome(corpus, "JPEG2000.dcm"), _outcome(corpus, "JPGExtended.dcm")
    assert j2k.shape == jpg.shape
    assert np.corrcoef(j2k.numpy().ravel(), jpg.numpy().ravel())[0, 1] > 0.9  # same scan, two lossy codecs


@pytest.mark.parametrize(
    "rel, reason",
    [
        ("examples_rgb_color.dcm", r"not a grayscale image \(PhotometricInterpretation RGB, SamplesPerPixel 3\)"),
        ("examples_palette.dcm", r"not a grayscale image \(PhotometricInterpretation PALETTE COLOR"),
        ("SC_ybr_full_422_uncompressed.dcm", r"not a grayscale image \(PhotometricInterpretation YBR_FULL_422"),
        ("SC_rgb_jpeg_gdcm.dcm", r"not a grayscale image \(PhotometricInterpretation RGB"),
        ("rtdose.dcm", r"multi-frame DICOM \(15 frames\)"),
        ("rtdose_rle.dcm", r"multi-frame DICOM \(15 frames\)"),
        ("rtplan.dcm", r"no pixel data \(SOP class RT Plan Storage\)"),
        ("test-SR.dcm", r"no pixel data \(SOP class Comprehensive SR Storage\)"),
        ("waveform_ecg.dcm", r"no pixel data \(SOP class 12-lead ECG Waveform Storage\)"),
        ("dicomdirtests/DICOMDIR", r"no pixel data \(SOP class Media Storage Directory Storage\)"),
        ("rtstruct.dcm", r"no pixel data \(SOP class RT Structure Set Storage\)"),  # no preamble: read with force
        ("ExplVR_BigEndNoMeta.dcm", r"no pixel data \(SOP class RT Ion Plan Storage\)"),
        ("MR_truncated.dcm", r"truncated pixel data \(8130 of 8192 bytes\)"),
        ("badVR.dcm", r"malformed header \(NumberOfFrames '1A' is not an integer\)"),
        ("nested_priv_SQ.dcm", r"incomplete image header \(missing Rows, Columns, BitsAllocated"),
        ("JPEG-lossy.dcm", r"cannot decode pixel data \(JPEG Extended \(Process 2 and 4\)\): "),  # corrupt on purpose
        ("JPEG2000-embedded-sequence-delimiter.dcm", r"cannot decode pixel data \(JPEG 2000 Image Compression\): "),
        ("no_meta.dcm", r"not a DICOM file"),
        ("README.txt", r"not a DICOM file or a PNG/JPEG/TIFF image"),
        ("zipMR.gz", r"not a DICOM file or a PNG/JPEG/TIFF image"),
        ("dicomdirtests", r"is a directory"),
    ],
)
def test_known_refusals(corpus, rel: str, reason: str) -> None:
    assert re.match(reason, _refusal(corpus, rel)), _refusal(corpus, rel)


def test_installed_decoders_cover_the_common_compressed_syntaxes() -> None:
    """JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 and RLE decode (pyproject installs the plugins;
    docs/method.md#dicom)."""
    from pydicom import uid

    get_decoder = pytest.importorskip("pydicom.pixels", reason="decoder registry is pydicom >= 3").get_decoder
    syntaxes = [
        uid.JPEGBaseline8Bit,
        uid.JPEGExtended12Bit,
        uid.JPEGLossless,
        uid.JPEGLosslessSV1,
        uid.JPEGLSLossless,
        uid.JPEGLSNearLossless,
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.RLELossless,
    ]
    missing = [s.name for s in syntaxes if not get_decoder(s).is_available]
    assert not missing, f"no decoder installed for {missing}"
    # the corpus has JPEG Lossless (Process 14 SV1) only in colour; it decodes, and the loader refuses the colour
    assert pydicom.dcmread(ROOT / "SC_rgb_jpeg_gdcm.dcm").pixel_array.shape[-1] == 3


def test_missing_decoder_is_refused_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no JPEG-LS plugin installed, the refusal says what to install instead of raising pydicom's error."""
    from pydicom.uid import JPEGLSLossless

    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom < 3: every plugin handler reports its package as not installed
        for handler in pydicom.config.pixel_data_handlers:
            if "numpy" not in handler.__name__:
                monkeypatch.setattr(handler, "is_available", lambda: False)
    else:  # pydicom 3: the decoder reports itself unavailable when it has no plugin
        monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})
    path = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    with pytest.raises(CXRImageError) as err:
        LoadCXRImage()(path)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot decode pixel data (JPEG-LS Lossless Image Compression); install"), (
        message
    )
    assert "pylibjpeg-libjpeg" in message and "\n" not in message


@pytest.mark.parametrize(
    "syntax, reason",
    [
        (
            "1.2.840.10008.1.2.4.100",
            r"cannot decode pixel data \(MPEG2 Main Profile / Main Level\): pydicom has no decoder",
        ),
        ("1.2.3.4.5", r"cannot decode pixel data \(unknown transfer syntax 1\.2\.3\.4\.5\)"),
    ],
)
def test_transfer_syntax_without_any_decoder(tmp_path: Path, syntax: str, reason: str) -> None:
    from pydicom.encaps import encapsulate

    path = write_dicom(tmp_path / "v.dcm", np.zeros((8, 8), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\x00\x01" * 16])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    pydicom.dcmwrite(path, ds)
    with pytest.raises(CXRImageError, match=rf"v\.dcm: {reason}"):
        LoadCXRImage()(path)


def _bare(path: Path, implicit: bool, little: bool) -> Path:
    """Rewrite a DICOM file as a bare data set: no preamble, no 'DICM', no file meta (as some old exports are)."""
    ds = pydicom.dcmread(path)
    if not little:  # pixel bytes follow the data set's byte order
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    del ds.file_meta
    ds.preamble = None
    out = path.with_name(f"bare_{'i' if implicit else 'e'}{'l' if little else 'b'}.dcm")
    pydicom.dcmwrite(out, ds, implicit_vr=implicit, little_endian=little, force_encoding=True)
    return out


@pytest.mark.skipif(int(pydicom.__version__.split(".")[0]) < 3, reason="dcmwrite(force_encoding=) is pydicom >= 3")
@pytest.mark.parametrize("implicit, little", [(True, True), (False, True), (False, False)])
def test_bare_dataset_without_meta_loads(tmp_path: Path, implicit: bool, little: bool) -> None:
    stored = np.tile(np.arange(64, dtype=np.uint16) * 60, (40, 1))
    ref = write_dicom(tmp_path / "ref.dcm", stored, "MONOCHROME1", slope=2, intercept=-100, window=(3000, 5000))
    bare = _bare(ref, implicit, little)
    assert bare.read_bytes()[128:132] != b"DICM"
    assert torch.equal(LoadCXRImage()(bare), LoadCXRImage()(ref))


def test_voi_lut_sequence(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    stored = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))
    lut = (np.sqrt(np.arange(4096) / 4095.0) * 65535).astype(np.uint16)  # a gamma-like VOI LUT
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new("LUTData", "OW", lut.tobytes())
    path = write_dicom(tmp_path / "lut.dcm", stored, VOILUTSequence=[item])
    img = LoadCXRImage()(path)
    assert img.meta["voi"] == "lut"
    expected = lut[stored].astype(np.float64)
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert np.allclose(img[0].numpy(), expected, atol=1e-5)


def test_float_pixel_data(tmp_path: Path) -> None:
    values = np.linspace(-1.5, 2.5, 12 * 10, dtype=np.float32).reshape(12, 10)
    path = write_dicom(tmp_path / "f.dcm", np.zeros((12, 10), np.uint16))
    ds = pydicom.dcmread(path)
    del ds.PixelData, ds.PixelRepresentation, ds.BitsStored, ds.HighBit
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    ds.save_as(path)
    img = LoadCXRImage()(path)
    assert np.allclose(img[0].numpy(), (values - values.min()) / (values.max() - values.min()), atol=1e-6)
    values[3, 4] = np.nan
    ds.FloatPixelData = values.tobytes()
    ds.save_as(path)
    with pytest.raises(CXRImageError, match=r"f\.dcm: 1 pixel values are NaN or infinite"):
        LoadCXRImage()(path)


def test_invalid_window_falls_back_to_the_data_range(tmp_path: Path) -> None:
    stored = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (4, 1))
    path = write_dicom(tmp_path / "w0.dcm", stored, window=(2000, 0))
    with pytest.warns(UserWarning, match=r"w0\.dcm: ignoring invalid VOI window"):
        img = LoadCXRImage()(path)
    assert img.meta["voi"] == "none" and float(img.min()) == 0.0 and float(img.max()) == 1.0
