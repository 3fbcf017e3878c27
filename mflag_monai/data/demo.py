"""The built-in demo data: small synthetic versions of the public data sets, on disk in their
official formats (SPEC section 3), so that every preparer, bundle and test runs without them.

Every image is a :mod:`~mflag_monai.data.phantom` radiograph, and every label, report
sentence, box and mask is derived from what that phantom drew. Four data sets are written
under one root::

    <root>/demo.json                  generator parameters, DEMO_VERSION, a summary
    <root>/mimic-cxr/                 MIMIC-CXR (DICOM + reports + the three CSVs)
    <root>/chexpert/                  CheXpert-v1.0-small (JPG + train.csv / valid.csv)
    <root>/rsna-pneumonia/            RSNA Pneumonia (DICOM + stage_2_* CSVs)
    <root>/siim-pneumothorax/         SIIM-ACR Pneumothorax (DICOM tree + train-rle.csv)

Generation is deterministic: the same arguments give byte-identical files (UIDs, dates and
names all come from the seed; nothing depends on the clock). Run it as a script with
``python -m mflag_monai.data.demo --out DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import textwrap
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from tqdm import tqdm

from .phantom import ChestPhantom, PhantomFindings, render_chest_xray, render_lateral_xray
from .rle import EMPTY_RLE, rle_encode

__all__ = [
    "DEMO_VERSION",
    "DATASET_DIRS",
    "DEMO_COUNTS",
    "MIMIC_LABELS",
    "CHEXPERT_LABELS",
    "default_demo_dir",
    "generate_demo_data",
    "ensure_demo_data",
    "main",
]

#: Bump whenever the generated files change, so that cached demo folders are regenerated.
DEMO_VERSION: int = 2

#: Folder of each data set under the demo root (the preparers' names).
DATASET_DIRS: dict[str, str] = {
    "mimic": "mimic-cxr",
    "chexpert": "chexpert",
    "rsna": "rsna-pneumonia",
    "siim": "siim-pneumothorax",
}

#: The 14 CheXpert labels in the column order of ``mimic-cxr-2.0.0-chexpert.csv`` (alphabetical).
MIMIC_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
    "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
)  # fmt: skip

#: The same labels in CheXpert's ``train.csv`` / ``valid.csv`` column order.
CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)  # fmt: skip

MIMIC_METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
)  # fmt: skip
CHEXPERT_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS)
RSNA_LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
SIIM_HEADER = "ImageId, EncodedPixels"

_CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
_DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
_UID_ROOT = "1.2.826.0.1.3680043.8.498"  # for the SIIM-style dotted UIDs
_IMPLEMENTATION_UID = "2.25.181140927461232309402427457811069125671"  # fixed: no pydicom version in the files
_IMPLEMENTATION_NAME = f"MFLAG_DEMO_{DEMO_VERSION}"
_PYDICOM_3 = int(pydicom.__version__.split(".")[0]) >= 3

# Stream ids, so that each data set draws its own patients from the one seed.
_STREAM = {"mimic": 1, "chexpert": 2, "rsna": 3, "siim": 4}


# ============================================================================ public API


def default_demo_dir() -> Path:
    """Where the demo data lives by default: ``$MFLAG_MONAI_DEMO_DIR``, else ``~/.cache/mflag_monai/demo``."""
    env = os.environ.get("MFLAG_MONAI_DEMO_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mflag_monai" / "demo"


def generate_demo_data(
    out_dir: str | os.PathLike | None = None,
    num_studies: int = 300,
    seed: int = 42,
    image_size: int = 320,
    overwrite: bool = False,
    progress: bool = True,
    counts: dict[str, int] | None = None,
) -> Path:
    """Write the four demo data sets under ``out_dir`` and return that folder.

    Nothing is done when ``out_dir/demo.json`` already records the same parameters (and
    ``overwrite`` is false). Otherwise everything is written to a temporary sibling folder
    that then replaces ``out_dir``, so a reader never sees a half-written data set.

    Args:
        out_dir: the demo root (default :func:`default_demo_dir`). An existing folder is only
            replaced if it is empty or holds a previous demo (a ``demo.json``).
        num_studies: MIMIC-CXR studies; the other data sets scale with it (about half as many
            images for CheXpert train, RSNA and SIIM; up to 40 CheXpert valid images).
        seed: the one seed every UID, name, date, finding and pixel derives from.
        image_size: nominal image side in pixels (MIMIC and CheXpert sizes vary around it;
            RSNA and SIIM images are ``image_size`` square).
        overwrite: regenerate even when the parameters match.
        progress: show a tqdm progress bar.
        counts: image counts that replace the ones derived from ``num_studies``, by key of
            :data:`DEMO_COUNTS` (e.g. ``{"chexpert-valid": 240}`` for a larger CheXpert test split).

    Returns:
        The demo root.
    """
    if num_studies < 10:
        raise ValueError("num_studies must be at least 10 (every data set needs a few of each kind)")
    if image_size < 64:
        raise ValueError("image_size must be at least 64 pixels")
    root = Path(out_dir).expanduser() if out_dir is not None else default_demo_dir()
    params: dict[str, Any] = {"num_studies": int(num_studies), "seed": int(seed), "image_size": int(image_size)}
    unknown = set(counts or {}) - set(DEMO_COUNTS)
    if unknown:
        raise ValueError(f"counts: unknown keys {sorted(unknown)}; expected some of {list(DEMO_COUNTS)}")
    if counts:  # recorded only when given, so that existing demo folders stay valid
        params["counts"] = {k: int(counts[k]) for k in sorted(counts)}
    if not overwrite and _read_stamp(root) == _stamp(params):
        return root
    if root.exists() and any(root.iterdir()) and not (root / "demo.json").is_file():
        raise FileExistsError(f"{root} is not empty and holds no demo.json: refusing to replace it")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        summary = _generate(tmp, progress=progress, **params)
        stamp = {**_stamp(params), "summary": summary}
        (tmp / "demo.json").write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        _swap_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_demo_data(out_dir: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Return the demo root, generating it if missing or made with other parameters.

    Args:
        out_dir: the demo root (default :func:`default_demo_dir`).
        kwargs: :func:`generate_demo_data` arguments (``num_studies``, ``seed``, ``image_size``, ...).
    """
    return generate_demo_data(out_dir, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m mflag_monai.data.demo --out DIR --num-studies N --seed S --image-size PX``."""
    parser = argparse.ArgumentParser(prog="python -m mflag_monai.data.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help=f"demo root (default: {default_demo_dir()})")
    parser.add_argument("--num-studies", "--num_studies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--image-size", "--image_size", type=int, default=320)
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args(argv)
    root = generate_demo_data(
        args.out, num_studies=args.num_studies, seed=args.seed, image_size=args.image_size, overwrite=args.overwrite
    )
    print(f"Demo data at {root}")
    print(format_summary(json.loads((root / "demo.json").read_text())["summary"]))
    return 0


#: Image counts of the derived data sets as functions of ``num_studies`` (``counts`` overrides them).
DEMO_COUNTS: dict[str, Callable[[int], int]] = {
    "chexpert-train": lambda n: n // 2,
    "chexpert-valid": lambda n: int(np.clip(n // 7, 8, 40)),
    "rsna-pneumonia": lambda n: max(6, n // 2),
    "siim-pneumothorax": lambda n: max(6, n // 2),
}


def _counts(num_studies: int, counts: dict[str, int] | None) -> dict[str, int]:
    return {k: int((counts or {}).get(k, rule(num_studies))) for k, rule in DEMO_COUNTS.items()}


def format_summary(summary: dict[str, dict[str, int]]) -> str:
    """Render the ``summary`` of ``demo.json`` as indented text, one data set per block."""
    lines = []
    for name, counts in summary.items():
        lines.append(f"{name}:")
        lines.extend(f"  {key}: {value}" for key, value in counts.items())
    return "\n".join(lines)


# ============================================================================ bookkeeping


def _stamp(params: dict[str, int]) -> dict[str, Any]:
    return {"demo_version": DEMO_VERSION, "parameters": params}


def _read_stamp(root: Path) -> dict[str, Any] | None:
    """The parameters recorded in ``root/demo.json`` (without the summary), or None."""
    try:
        stamp = json.loads((root / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    return {k: stamp.get(k) for k in ("demo_version", "parameters")}


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Replace ``root`` by ``tmp`` with renames, tolerating a concurrent generator."""
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        root.rename(old)
    try:
        tmp.rename(root)
    except OSError:
        # Another process put a folder there first: keep its (identical) result.
        if not (root / "demo.json").is_file():
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, *keys): results don't depend on generation order."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _subseed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**62))


def _uid_2_25(rng: np.random.Generator) -> str:
    """A ``2.25.<128-bit integer>`` UID (the UUID-derived form MIMIC-CXR uses)."""
    return f"2.25.{int.from_bytes(rng.bytes(16), 'big')}"


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _sizes(image_size: int) -> list[tuple[int, int]]:
    """(rows, columns) choices around ``image_size``: square, taller, narrower (even sides)."""
    s = image_size
    even = lambda x: int(round(x / 2)) * 2  # noqa: E731
    return [(s, s), (even(1.1 * s), s), (s, even(0.9 * s))]


def _fmt(value: float | None) -> str:
    """A label as the data sets write it: ``1.0`` / ``0.0`` / ``-1.0`` / blank."""
    return "" if value is None else f"{value:.1f}"


def _write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# ============================================================================ DICOM writing


def _save_dicom(path: Path, pixels: np.ndarray, header: dict[str, Any], sop_class: str, sop_uid: str) -> None:
    """Write an uncompressed Explicit VR Little Endian Part-10 file (pydicom 2.4 and 3.x).

    ``pixels`` is uint8 (8-bit) or uint16 (stored value, 12-bit); ``header`` holds keyword ->
    value pairs, the pixel module included.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_NAME
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128, is_implicit_VR=False, is_little_endian=True)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    data = pixels.astype("<u2" if pixels.dtype == np.uint16 else np.uint8).tobytes()
    if len(data) % 2:  # DICOM values have even length
        data += b"\0"
    ds.add_new(0x7FE00010, "OW" if pixels.dtype == np.uint16 else "OB", data)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _PYDICOM_3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.save_as(str(path), write_like_original=False)


def _pixel_module(rows: int, cols: int, bits: int, photometric: str) -> dict[str, Any]:
    return {
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": photometric,
        "Rows": rows,
        "Columns": cols,
        "BitsAllocated": 8 if bits == 8 else 16,
        "BitsStored": bits,
        "HighBit": bits - 1,
        "PixelRepresentation": 0,
    }


def _ds(x: float) -> str:
    """A short decimal string (DS values are limited to 16 characters)."""
    return f"{x:.6g}"


# ============================================================================ cases and reports


@dataclass
class _Case:
    """Findings to draw in one frontal image (phantom arguments) and how the text treats them."""

    cardiomegaly: bool = False
    effusion: tuple[str, ...] = ()
    effusion_size: str = "moderate"
    consolidation: int = 0
    nodule: int = 0
    pneumothorax: tuple[str, ...] = ()
    pneumothorax_size: str = "moderate"
    support_devices: bool = False
    projection: str = "PA"
    hedge: bool = False  # a subtle finding is worded as uncertain

    def phantom_kwargs(self) -> dict[str, Any]:
        return {
            "cardiomegaly": self.cardiomegaly,
            "effusion": self.effusion,
            "effusion_size": self.effusion_size,
            "consolidation": self.consolidation,
            "nodule": self.nodule,
            "pneumothorax": self.pneumothorax,
            "pneumothorax_size": self.pneumothorax_size,
            "support_devices": self.support_devices,
            "projection": self.projection,
        }


def _pick(rng: np.random.Generator, options: list | tuple, p: list[float] | None = None) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def _side_choice(rng: np.random.Generator) -> tuple[str, ...]:
    return _pick(rng, [("right",), ("left",), ("right", "left")], [0.4, 0.35, 0.25])


def _sample_case(rng: np.random.Generator, p: dict[str, float]) -> _Case:
    """Draw independent findings with the probabilities ``p`` (keys: cardiomegaly, effusion,
    consolidation, nodule, pneumothorax, devices, ap, hedge)."""
    case = _Case()
    case.cardiomegaly = bool(rng.random() < p.get("cardiomegaly", 0.0))
    if rng.random() < p.get("effusion", 0.0):
        case.effusion = _side_choice(rng)
        case.effusion_size = _pick(rng, ["small", "moderate", "large"], [0.4, 0.4, 0.2])
    if rng.random() < p.get("consolidation", 0.0):
        case.consolidation = 1 if rng.random() < 0.75 else 2
    if rng.random() < p.get("nodule", 0.0):
        case.nodule = 1 if rng.random() < 0.8 else 2
    if rng.random() < p.get("pneumothorax", 0.0):
        case.pneumothorax = _pick(rng, [("right",), ("left",), ("right", "left")], [0.45, 0.4, 0.15])
        case.pneumothorax_size = _pick(rng, ["small", "moderate", "large"], [0.4, 0.35, 0.25])
    case.support_devices = bool(rng.random() < p.get("devices", 0.0))
    # Portable AP films: more often with lines and tubes.
    case.projection = "AP" if rng.random() < (0.8 if case.support_devices else p.get("ap", 0.3)) else "PA"
    case.hedge = bool(rng.random() < p.get("hedge", 0.0))
    return case


# Report sentences. Each builder returns (text, {label: value}); labels follow the
# CheXpert labeller: 1.0 positive, 0.0 negated, -1.0 uncertain, absent = not mentioned.
_Sentence = tuple[str, dict[str, float]]
_LOBE = {
    ("right", "upper"): ["right upper lobe", "right upper lung"],
    ("right", "middle"): ["right middle lobe", "right mid lung"],
    ("right", "lower"): ["right lower lobe", "right base"],
    ("left", "upper"): ["left upper lobe", "left upper lung"],
    ("left", "middle"): ["lingula", "left mid lung"],
    ("left", "lower"): ["left lower lobe", "left base"],
}
_SIZE_WORD = {"small": ["small", "small"], "moderate": ["moderate", "moderate-sized"], "large": ["large", "large"]}


def _sides_phrase(sides: tuple[str, ...]) -> str:
    return "bilateral" if len(sides) == 2 else sides[0]


def _effusion_sentences(rng: np.random.Generator, f: PhantomFindings, hedge: bool) -> tuple[_Sentence, _Sentence]:
    """(findings sentence, impression sentence) for a drawn effusion."""
    sides, size = f.effusion, f.effusion_size
    where = _sides_phrase(sides)
    plural = "effusions" if len(sides) == 2 else "effusion"
    if hedge and size == "small":
        angle = "angles" if len(sides) == 2 else "angle"
        text = _pick(rng, [
            f"Blunting of the {where} costophrenic {angle} may reflect small {plural}.",
            f"Possible small {where} pleural {plural}.",
        ])  # fmt: skip
        uncertain = {"Pleural Effusion": -1.0}
        return (text, uncertain), (f"Possible small {where} pleural {plural}.", uncertain)
    word = _pick(rng, _SIZE_WORD[size])
    text = _pick(rng, [
        f"{word.capitalize()} {where} pleural {plural}.",
        f"There {'are' if len(sides) == 2 else 'is a'} {word} {where} pleural {plural}.",
        f"{word.capitalize()} {where} pleural {plural} with blunting of the costophrenic "
        f"angle{'s' if len(sides) == 2 else ''}.",
    ])  # fmt: skip
    positive = {"Pleural Effusion": 1.0}
    return (text, positive), (f"{word.capitalize()} {where} pleural {plural}.", positive)


def _pneumothorax_sentences(rng: np.random.Generator, f: PhantomFindings, hedge: bool) -> tuple[_Sentence, _Sentence]:
    sides, size = f.pneumothorax, f.pneumothorax_size
    where = _sides_phrase(sides)
    noun = "pneumothoraces" if len(sides) == 2 else "pneumothorax"
    if hedge and size == "small":
        text = _pick(rng, [
            f"Possible small {where} apical {noun}.",
            f"A small {where} apical {noun} cannot be excluded.",
        ])  # fmt: skip
        return (text, {"Pneumothorax": -1.0}), (f"Possible small {where} apical {noun}.", {"Pneumothorax": -1.0})
    word = _pick(rng, _SIZE_WORD[size])
    text = _pick(rng, [
        f"{word.capitalize()} {where} apical {noun}.",
        f"There is a {word} {where} {noun} with a visible pleural line." if len(sides) == 1
        else f"{word.capitalize()} bilateral {noun}, with visible pleural lines.",
        f"{word.capitalize()} {where} {noun} extending along the lateral chest wall.",
    ])  # fmt: skip
    return (text, {"Pneumothorax": 1.0}), (f"{word.capitalize()} {where} {noun}.", {"Pneumothorax": 1.0})


def _consolidation_sentences(
    rng: np.random.Generator, f: PhantomFindings, hedge: bool
) -> tuple[list[_Sentence], list[_Sentence]]:
    found, impression = [], []
    for c in f.consolidations:
        loc = _pick(rng, _LOBE[(c.side, c.zone)])
        if hedge:
            found.append(_pick(rng, [
                (f"There is a patchy opacity in the {loc}, which may represent pneumonia.",
                 {"Lung Opacity": 1.0, "Pneumonia": -1.0}),
                (f"Focal consolidation in the {loc}, concerning for pneumonia.",
                 {"Consolidation": 1.0, "Pneumonia": -1.0}),
            ]))  # fmt: skip
            impression.append((f"{loc.capitalize()} opacity; pneumonia cannot be excluded.",
                               {"Lung Opacity": 1.0, "Pneumonia": -1.0}))  # fmt: skip
        else:
            found.append(_pick(rng, [
                (f"Focal consolidation in the {loc}, consistent with pneumonia.",
                 {"Consolidation": 1.0, "Pneumonia": 1.0}),
                (f"Airspace opacity in the {loc} compatible with pneumonia.",
                 {"Lung Opacity": 1.0, "Pneumonia": 1.0}),
                (f"There is a dense consolidation in the {loc}.", {"Consolidation": 1.0}),
            ]))  # fmt: skip
            impression.append((f"{loc.capitalize()} pneumonia.", {"Pneumonia": 1.0, "Lung Opacity": 1.0}))
    return found, impression


def _nodule_sentences(rng: np.random.Generator, f: PhantomFindings) -> tuple[list[_Sentence], list[_Sentence]]:
    """Findings and impression sentences for drawn nodules (CheXpert: Lung Lesion)."""
    found, impression = [], []
    for n in f.nodules:
        loc = _pick(rng, _LOBE[(n.side, n.zone)])
        size = f"{n.diameter_mm / 10:.1f} cm" if rng.random() < 0.5 else f"{n.diameter_mm} mm"
        found.append(_pick(rng, [
            (f"A {size} nodule is seen in the {loc}.", {"Lung Lesion": 1.0}),
            (f"There is a {size} rounded opacity in the {loc}, likely a pulmonary nodule.", {"Lung Lesion": 1.0}),
            (f"Well-circumscribed {size} nodular opacity projecting over the {loc}.", {"Lung Lesion": 1.0}),
        ]))  # fmt: skip
    if f.nodules:
        where = _LOBE[(f.nodules[0].side, f.nodules[0].zone)][0]
        noun = "nodules" if len(f.nodules) > 1 else "nodule"
        impression.append((f"Pulmonary {noun}, the largest in the {where}; recommend chest CT.", {"Lung Lesion": 1.0}))
    return found, impression


_DEVICE_TEXT = {
    "ett": [
        "Endotracheal tube terminates approximately {n} cm above the carina.",
        "The endotracheal tube tip is {n} cm above the carina.",
    ],
    "enteric": [
        "An enteric tube courses below the diaphragm with the tip in the stomach.",
        "Nasogastric tube extends into the stomach.",
    ],
    "cvc": [
        "Right internal jugular central venous catheter terminates in the mid SVC.",
        "A right IJ line ends at the cavoatrial junction.",
    ],
}


def _report_sentences(
    rng: np.random.Generator, f: PhantomFindings, ctr: float, hedge: bool
) -> tuple[list[_Sentence], list[_Sentence]]:
    """(FINDINGS sentences, IMPRESSION sentences) describing the phantom's findings."""
    found: list[_Sentence] = []
    impression: list[_Sentence] = []
    for device in f.support_devices:
        found.append((_pick(rng, _DEVICE_TEXT[device]).format(n=int(rng.integers(3, 6))), {"Support Devices": 1.0}))
    if f.support_devices and rng.random() < 0.6:
        impression.append(("Lines and tubes in standard position.", {"Support Devices": 1.0}))

    # Lungs: opacities first, then what is absent.
    cons_found, cons_imp = _consolidation_sentences(rng, f, hedge)
    found += cons_found
    impression += cons_imp
    nod_found, nod_imp = _nodule_sentences(rng, f)
    found += nod_found
    impression += nod_imp
    if f.effusion:
        s_found, s_imp = _effusion_sentences(rng, f, hedge)
        found.append(s_found)
        impression.append(s_imp)
    if f.pneumothorax:
        s_found, s_imp = _pneumothorax_sentences(rng, f, hedge)
        found.append(s_found)
        impression.append(s_imp)
    absent = [
        name
        for name, present in (
            ("focal consolidation", bool(f.consolidations)),
            ("pleural effusion", bool(f.effusion)),
            ("pneumothorax", bool(f.pneumothorax)),
        )
        if not present
    ]
    label_of = {
        "focal consolidation": "Consolidation",
        "pleural effusion": "Pleural Effusion",
        "pneumothorax": "Pneumothorax",
    }
    if absent:
        if len(absent) > 1 and rng.random() < 0.6:
            listed = ", ".join(absent[:-1]) + " or " + absent[-1]
            text = _pick(rng, [f"There is no {listed}.", f"No {listed} is seen."])
            found.append((text, {label_of[a]: 0.0 for a in absent}))
        else:
            for a in absent:
                found.append((_pick(rng, [f"No {a}.", f"There is no {a}."]), {label_of[a]: 0.0}))
    if not (f.consolidations or f.nodules or f.effusion or f.pneumothorax) and rng.random() < 0.4:
        found.insert(len(f.support_devices), ("The lungs are clear.", {}))
    if rng.random() < 0.35:
        found.append((_pick(rng, ["No pulmonary edema.", "There is no pulmonary vascular congestion or edema."]),
                      {"Edema": 0.0}))  # fmt: skip

    # Heart.
    if f.cardiomegaly:
        degree = "moderate" if ctr >= 0.6 else "mild"
        text = _pick(rng, [
            f"{degree.capitalize()} cardiomegaly.",
            f"The heart is {degree}ly enlarged.",
            f"Heart size is {degree}ly enlarged.",
        ])  # fmt: skip
        found.append((text, {"Cardiomegaly": 1.0}))
        impression.append((f"{degree.capitalize()} cardiomegaly.", {"Cardiomegaly": 1.0}))
    elif rng.random() < 0.85:
        found.append(_pick(rng, [
            ("Heart size is normal.", {"Cardiomegaly": 0.0}),
            ("The cardiac silhouette is normal in size.", {"Cardiomegaly": 0.0}),
            ("The cardiomediastinal silhouette is within normal limits.",
             {"Cardiomegaly": 0.0, "Enlarged Cardiomediastinum": 0.0}),
            ("Normal heart size. Mediastinal contours are unremarkable.",
             {"Cardiomegaly": 0.0, "Enlarged Cardiomediastinum": 0.0}),
        ]))  # fmt: skip
    if rng.random() < 0.3:
        found.append(_pick(rng, [
            ("No acute osseous abnormality.", {}),
            ("No displaced fracture is seen.", {"Fracture": 0.0}),
        ]))  # fmt: skip

    if not impression or all(labels == {"Support Devices": 1.0} for _, labels in impression):
        impression.append(_pick(rng, [
            ("No acute cardiopulmonary process.", {}),
            ("No acute intrathoracic process.", {}),
            ("No radiographic evidence of pneumonia.", {"Pneumonia": 0.0}),
        ]))  # fmt: skip
    return found, impression


def _merge_labels(sentences: list[_Sentence]) -> dict[str, float | None]:
    """Labels of a report: positive beats uncertain beats negative (as the CheXpert labeller);
    ``No Finding`` is 1.0 when no pathology is positive or uncertain (devices don't count)."""
    rank = {1.0: 3, -1.0: 2, 0.0: 1}
    labels: dict[str, float | None] = dict.fromkeys(MIMIC_LABELS)
    for _, mentioned in sentences:
        for name, value in mentioned.items():
            if labels[name] is None or rank[value] > rank[labels[name]]:
                labels[name] = value
    pathology = [k for k in MIMIC_LABELS if k not in ("No Finding", "Support Devices")]
    if not any(labels[k] in (1.0, -1.0) for k in pathology):
        labels["No Finding"] = 1.0
    return labels


def _wrap(text: str) -> list[str]:
    return [" " + line for line in textwrap.wrap(text, width=72)] or [" "]


_INDICATIONS = [
    "___ year old {sex} with cough and fever, evaluate for pneumonia.",
    "___-year-old {sex} with shortness of breath.  // eval for effusion",
    "History: ___{s} with chest pain",
    "___ year old {sex} status post line placement, assess position.",
    "___ with dyspnea and hypoxia.  // ? pneumothorax",
    "Preoperative evaluation.",
]


def _format_report(
    rng: np.random.Generator,
    exam: str,
    sex: str,
    findings: list[str] | None,
    impression: list[str] | None,
    extra_sections: bool = False,
) -> str:
    """Lay out a MIMIC-CXR style free-text report; ``None`` omits a section."""
    sex_word = "man" if sex == "M" else "woman"
    lines = [" " * 33 + "FINAL REPORT", f" EXAMINATION:  {exam}", " "]
    indication = _pick(rng, _INDICATIONS).format(sex=sex_word, s=sex)
    lines += [f" INDICATION:  {indication}", " "]
    if rng.random() < 0.6:
        technique = {"CHEST (PA AND LAT)": "Chest PA and lateral", "CHEST (PA)": "Chest PA"}.get(
            exam, "Portable AP chest radiograph"
        )
        lines += [f" TECHNIQUE:  {technique}", " "]
    lines += [f" COMPARISON:  {_pick(rng, ['None.', 'Chest radiograph from ___.', '___'])}", " "]
    if findings is not None:
        lines += [" FINDINGS: ", " "]
        body = " ".join(findings)
        lines += _wrap(body) + [" "]
    if impression is not None:
        lines += [" IMPRESSION: ", " "]
        if len(impression) > 1:
            for i, sentence in enumerate(impression, 1):
                lines += _wrap(f"{i}. {sentence}")
        else:
            lines += _wrap(impression[0])
        lines += [" "]
    if extra_sections:
        lines += [
            " NOTIFICATION:  The findings were discussed with Dr. ___ by telephone at ___",
            " on the day of the study.",
            " ",
        ]
    return "\n".join(lines).rstrip() + "\n"


# ============================================================================ rendering


def _render_frontal(seed: int, rows: int, cols: int, case: _Case) -> ChestPhantom:
    return render_chest_xray(rows, cols, rng=np.random.default_rng(seed), **case.phantom_kwargs())


def _render_lateral(seed: int, rows: int, cols: int) -> np.ndarray:
    return render_lateral_xray(rows, cols, rng=np.random.default_rng(seed))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


# ============================================================================ MIMIC-CXR


@dataclass
class _MimicImage:
    dicom_id: str
    view: str  # ViewPosition: PA, AP, LL or LATERAL
    rows: int
    cols: int
    seed: int
    modality: str  # CR or DX
    photometric: str
    slope: int
    intercept: int
    has_window: bool
    sop_uid: str
    series_uid: str


@dataclass
class _MimicStudy:
    subject_id: int
    study_id: int
    split: str
    sex: str
    age: int
    date: str
    time: str
    study_uid: str
    case: _Case
    report_kind: str  # "both", "findings", "impression" or "none"
    report_seed: int
    images: list[_MimicImage] = field(default_factory=list)


_VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LL": "left lateral", "LATERAL": "lateral"}
_MIMIC_P = {"cardiomegaly": 0.2, "effusion": 0.2, "consolidation": 0.18, "nodule": 0.08, "pneumothorax": 0.08,
            "devices": 0.15, "ap": 0.3, "hedge": 0.25}  # fmt: skip


def _plan_mimic(seed: int, num_studies: int, image_size: int) -> list[_MimicStudy]:
    """Every MIMIC-CXR decision (ids, views, findings, headers), without rendering."""
    rng = _rng(seed, _STREAM["mimic"])
    n = num_studies
    n_subjects = max(3, int(round(n * 0.7)))
    subjects = 10_000_000 + np.sort(rng.choice(9_999_999, size=n_subjects, replace=False))
    # Every subject gets a study; the rest go to random subjects (follow-up studies).
    owners = np.sort(np.concatenate([np.arange(n_subjects), rng.integers(0, n_subjects, n - n_subjects)]))
    study_ids = 50_000_000 + rng.choice(9_999_999, size=n, replace=False)
    order = rng.permutation(n_subjects)
    n_val = max(1, int(round(0.1 * n_subjects)))
    split_of = {}
    for rank, s in enumerate(order):
        split_of[int(s)] = "validate" if rank < n_val else "test" if rank < 2 * n_val else "train"
    sex_of = {int(s): _pick(rng, ["M", "F"]) for s in range(n_subjects)}
    age_of = {int(s): int(rng.integers(20, 91)) for s in range(n_subjects)}
    # Fixed quotas so even a tiny demo has each kind.
    kinds = np.array(["both"] * n, dtype=object)
    special = rng.permutation(n)
    n_none, n_imp, n_find = max(1, round(0.03 * n)), max(1, round(0.08 * n)), max(1, round(0.07 * n))
    kinds[special[:n_none]] = "none"
    kinds[special[n_none : n_none + n_imp]] = "impression"
    kinds[special[n_none + n_imp : n_none + n_imp + n_find]] = "findings"
    has_lateral = np.zeros(n, dtype=bool)
    has_lateral[rng.permutation(n)[: max(1, round(0.15 * n))]] = True
    sizes = _sizes(image_size)

    studies = []
    for i in range(n):
        subj = int(owners[i])
        case = _sample_case(rng, _MIMIC_P)
        year, month, day = int(rng.integers(2110, 2211)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        hh, mm, ss, ms = (int(rng.integers(0, k)) for k in (24, 60, 60, 1000))
        study = _MimicStudy(
            subject_id=int(subjects[subj]),
            study_id=int(study_ids[i]),
            split=split_of[subj],
            sex=sex_of[subj],
            age=age_of[subj],
            date=f"{year:04d}{month:02d}{day:02d}",
            time=f"{hh:02d}{mm:02d}{ss:02d}.{ms:03d}",
            study_uid=_uid_2_25(rng),
            case=case,
            report_kind=str(kinds[i]),
            report_seed=_subseed(rng),
        )
        views = [case.projection] + ([_pick(rng, ["LL", "LATERAL"])] if has_lateral[i] else [])
        for view in views:
            rows, cols = _pick(rng, sizes, [0.5, 0.3, 0.2])
            modality = _pick(rng, ["CR", "DX"])
            study.images.append(
                _MimicImage(
                    dicom_id="-".join(rng.bytes(20).hex()[k : k + 8] for k in range(0, 40, 8)),
                    view=view,
                    rows=rows,
                    cols=cols,
                    seed=_subseed(rng),
                    modality=modality,
                    photometric="MONOCHROME1" if rng.random() < 0.3 else "MONOCHROME2",
                    slope=_pick(rng, [1, 2], [0.7, 0.3]),
                    intercept=_pick(rng, [0, -1024], [0.7, 0.3]),
                    has_window=bool(rng.random() < 0.85),
                    sop_uid=_uid_2_25(rng),
                    series_uid=_uid_2_25(rng),
                )
            )
        studies.append(study)
    studies.sort(key=lambda s: (s.subject_id, s.study_id))
    return studies


def _mimic_stored(image: np.ndarray, img: _MimicImage) -> tuple[np.ndarray, dict[str, Any]]:
    """12-bit stored values of a phantom image and the header that makes them display right.

    MONOCHROME2: stored grows with density. MONOCHROME1: stored = 4095 - that, so the file
    viewed with MONOCHROME1 semantics (high = dark) is the phantom again.
    """
    rng = np.random.default_rng(img.seed + 1)  # a separate stream from the render's
    lo, hi = int(rng.integers(80, 500)), int(rng.integers(3300, 4096))
    stored = np.round(lo + image * (hi - lo)).astype(np.uint16)
    if img.photometric == "MONOCHROME1":
        stored = (4095 - stored).astype(np.uint16)
    header: dict[str, Any] = {
        "RescaleIntercept": str(img.intercept),
        "RescaleSlope": str(img.slope),
        "RescaleType": "US",
    }
    if img.has_window:
        # Cover the useful range (0.5-99.5 percentiles) of the modality values.
        p_lo, p_hi = np.percentile(stored, [0.5, 99.5])
        m_lo, m_hi = img.slope * p_lo + img.intercept, img.slope * p_hi + img.intercept
        header["WindowCenter"] = _ds(round((m_lo + m_hi) / 2))
        header["WindowWidth"] = _ds(max(round((m_hi - m_lo) * 1.05), 2))
        header["WindowCenterWidthExplanation"] = "NORMAL"
    return stored, header


def _write_mimic(root: Path, plan: list[_MimicStudy], bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["mimic"]
    meta_rows, split_rows, label_rows = [], [], []
    counts: Counter = Counter()
    for study in plan:
        sdir = out / "files" / f"p{str(study.subject_id)[:2]}" / f"p{study.subject_id}"
        rng = np.random.default_rng(study.report_seed)
        frontal = study.images[0]
        phantom = _render_frontal(frontal.seed, frontal.rows, frontal.cols, study.case)
        lateral = len(study.images) > 1
        exam = "CHEST (PORTABLE AP)" if frontal.view == "AP" else "CHEST (PA AND LAT)" if lateral else "CHEST (PA)"

        # Report and labels from the same sentences.
        found, imp = _report_sentences(rng, phantom.findings, phantom.ctr, study.case.hedge)
        kind = study.report_kind
        used = (found if kind in ("both", "findings") else []) + (imp if kind in ("both", "impression") else [])
        text = _format_report(
            rng,
            exam,
            study.sex,
            [s for s, _ in found] if kind in ("both", "findings") else None,
            [s for s, _ in imp] if kind in ("both", "impression") else None,
            extra_sections=kind == "none" or rng.random() < 0.1,
        )
        sdir.mkdir(parents=True, exist_ok=True)
        (sdir / f"s{study.study_id}.txt").write_text(text)
        labels = _merge_labels(used) if used else dict.fromkeys(MIMIC_LABELS)
        label_rows.append([study.subject_id, study.study_id, *(_fmt(labels[k]) for k in MIMIC_LABELS)])
        counts[f"reports: {kind}"] += 1
        for k in MIMIC_LABELS:
            if labels[k] == 1.0:
                counts[f"label {k} = 1"] += 1
            elif labels[k] == -1.0:
                counts[f"label {k} = -1"] += 1

        for img in study.images:
            pixels = phantom.image if img is frontal else _render_lateral(img.seed, img.rows, img.cols)
            stored, header = _mimic_stored(pixels, img)
            view_meaning = _VIEW_MEANING[img.view]
            orientation = "Recumbent" if img.view == "AP" else "Erect"
            spacing = _ds(430.0 / max(img.rows, img.cols))
            header.update(
                {
                    "ImageType": ["ORIGINAL", "PRIMARY"],
                    "StudyDate": study.date,
                    "SeriesDate": study.date,
                    "StudyTime": study.time,
                    "AccessionNumber": "",
                    "Modality": img.modality,
                    "Manufacturer": "MFLAG DEMO",
                    "PatientName": "___",
                    "PatientID": str(study.subject_id),
                    "PatientBirthDate": "",
                    "PatientSex": study.sex,
                    "PatientAge": f"{study.age:03d}Y",
                    "BodyPartExamined": "CHEST",
                    "ViewPosition": img.view,
                    "StudyInstanceUID": study.study_uid,
                    "SeriesInstanceUID": img.series_uid,
                    "StudyID": str(study.study_id),
                    "SeriesNumber": study.images.index(img) + 1,
                    "InstanceNumber": 1,
                    "PatientOrientation": ["P", "F"] if img.view in ("LL", "LATERAL") else ["L", "F"],
                    "PixelSpacing": [spacing, spacing],
                    "ImagerPixelSpacing": [spacing, spacing],
                    **_pixel_module(img.rows, img.cols, 12, img.photometric),
                }
            )
            sop_class = _CR_SOP_CLASS if img.modality == "CR" else _DX_SOP_CLASS
            _save_dicom(sdir / f"s{study.study_id}" / f"{img.dicom_id}.dcm", stored, header, sop_class, img.sop_uid)
            meta_rows.append([
                img.dicom_id, study.subject_id, study.study_id, exam, img.view, img.rows, img.cols,
                study.date, f"{float(study.time):.3f}", exam, view_meaning, orientation,
            ])  # fmt: skip
            split_rows.append([img.dicom_id, study.study_id, study.subject_id, study.split])
            counts[f"images: {img.view}"] += 1
            counts[f"images: {img.photometric}"] += 1
            bar.update()
        counts[f"studies: {study.split}"] += 1

    _write_csv(out / "mimic-cxr-2.0.0-metadata.csv", MIMIC_METADATA_COLUMNS, meta_rows)
    _write_csv(out / "mimic-cxr-2.0.0-split.csv", ("dicom_id", "study_id", "subject_id", "split"), split_rows)
    _write_csv(out / "mimic-cxr-2.0.0-chexpert.csv", ("subject_id", "study_id", *MIMIC_LABELS), label_rows)
    return {"studies": len(plan), **dict(sorted(counts.items()))}


# ============================================================================ CheXpert


@dataclass
class _ChexpertImage:
    path: str  # relative to the chexpert root
    split: str  # train or valid
    sex: str
    age: int
    view: str  # Frontal or Lateral
    projection: str  # AP or PA
    rows: int
    cols: int
    seed: int
    case: _Case
    label_seed: int


_CHEXPERT_P = {"cardiomegaly": 0.25, "effusion": 0.25, "consolidation": 0.2, "nodule": 0.08, "pneumothorax": 0.1,
               "devices": 0.3, "ap": 0.5, "hedge": 0.3}  # fmt: skip


def _plan_chexpert(seed: int, train: int, valid: int, image_size: int) -> list[_ChexpertImage]:
    rng = _rng(seed, _STREAM["chexpert"])
    sizes = [(image_size, image_size), (image_size, int(round(image_size * 1.2 / 2)) * 2),
             (int(round(image_size * 1.2 / 2)) * 2, image_size)]  # fmt: skip
    images: list[_ChexpertImage] = []
    targets = {"train": train, "valid": valid}
    first_patient = {"train": 1, "valid": 64541}  # CheXpert's valid patients start there
    for split, target in targets.items():
        made, patient = 0, first_patient[split]
        while made < target:
            sex, age = _pick(rng, ["Female", "Male"]), int(rng.integers(18, 91))
            for study in range(1, int(rng.integers(1, 4)) + 1):
                if made >= target:
                    break
                case = _sample_case(rng, _CHEXPERT_P)
                case.hedge = case.hedge and split == "train"  # valid labels are consensus 0/1
                label_seed = _subseed(rng)
                views = ["Frontal"] + (["Lateral"] if rng.random() < 0.12 else [])
                for k, view in enumerate(views, 1):
                    rows, cols = _pick(rng, sizes, [0.4, 0.4, 0.2])
                    name = f"view{k}_{view.lower()}.jpg"
                    images.append(
                        _ChexpertImage(
                            path=f"CheXpert-v1.0-small/{split}/patient{patient:05d}/study{study}/{name}",
                            split=split, sex=sex, age=age, view=view, projection=case.projection,
                            rows=rows, cols=cols, seed=_subseed(rng), case=case, label_seed=label_seed,
                        )
                    )  # fmt: skip
                    made += 1
            patient += 1
    return images


def _write_chexpert(root: Path, plan: list[_ChexpertImage], bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["chexpert"]
    rows: dict[str, list[list[Any]]] = {"train": [], "valid": []}
    counts: Counter = Counter()
    study_labels: dict[str, dict[str, float | None]] = {}
    for item in plan:
        study_dir = item.path.rsplit("/", 1)[0]
        if item.view == "Frontal":
            phantom = _render_frontal(item.seed, item.rows, item.cols, item.case)
            pixels = phantom.image
            # CheXpert labels come from the report: build one, keep only its labels.
            label_rng = np.random.default_rng(item.label_seed)
            found, imp = _report_sentences(label_rng, phantom.findings, phantom.ctr, item.case.hedge)
            labels = _merge_labels(found + imp)
            if item.split == "valid":  # radiologist consensus: every label 0 or 1
                labels = {k: 1.0 if v in (1.0, -1.0) else 0.0 for k, v in labels.items()}
            study_labels[study_dir] = labels
        else:
            pixels = _render_lateral(item.seed, item.rows, item.cols)
            labels = study_labels[study_dir]  # the lateral shares its study's labels
        path = out / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_to_uint8(pixels), mode="L").save(path, format="JPEG", quality=90)
        rows[item.split].append([
            item.path, item.sex, item.age, item.view, item.projection if item.view == "Frontal" else "",
            *(_fmt(labels[k]) for k in CHEXPERT_LABELS),
        ])  # fmt: skip
        counts[f"{item.split} images"] += 1
        counts[f"{item.split} {item.view.lower()}"] += 1
        for k in CHEXPERT_LABELS:
            if labels[k] == 1.0:
                counts[f"{item.split} label {k} = 1"] += 1
            elif labels[k] == -1.0:
                counts[f"{item.split} label {k} = -1"] += 1
        bar.update()
    _write_csv(out / "train.csv", CHEXPERT_COLUMNS, rows["train"])
    _write_csv(out / "valid.csv", CHEXPERT_COLUMNS, rows["valid"])
    return dict(sorted(counts.items()))


# ============================================================================ RSNA Pneumonia


@dataclass
class _SquareImage:
    """One image of the RSNA or SIIM sets (8-bit, square)."""

    image_id: str  # RSNA patientId / SIIM ImageId (= SOPInstanceUID)
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sex: str
    age: int
    seed: int
    case: _Case
    label: str  # RSNA class or SIIM "positive"/"negative"


def _square_plan(
    seed: int,
    stream: str,
    count: int,
    make_case: Callable[[np.random.Generator, int], tuple[_Case, str]],
    uids: Callable[[np.random.Generator, int], tuple[str, ...]],
) -> list[_SquareImage]:
    rng = _rng(seed, _STREAM[stream])
    items = []
    for i in range(count):
        case, label = make_case(rng, i)
        image_id, patient_id, study_uid, series_uid, sop_uid = uids(rng, i)
        items.append(
            _SquareImage(
                image_id=image_id, patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
                sop_uid=sop_uid, sex=_pick(rng, ["M", "F"]), age=int(rng.integers(18, 91)),
                seed=_subseed(rng), case=case, label=label,
            )
        )  # fmt: skip
    return items


def _quota(rng: np.random.Generator, count: int, fraction: float) -> np.ndarray:
    """A boolean array with exactly ``round(fraction * count)`` (at least 1) true, shuffled."""
    flags = np.zeros(count, dtype=bool)
    flags[: max(1, int(round(fraction * count)))] = True
    return rng.permutation(flags)


def _plan_rsna(seed: int, count: int, image_size: int) -> list[_SquareImage]:
    quota_rng = _rng(seed, _STREAM["rsna"], 0)
    positive = _quota(quota_rng, count, 0.35)
    # About half of the positive images have two boxes (one per lung), as in the challenge.
    two_boxes = np.zeros(count, dtype=bool)
    two_boxes[np.flatnonzero(positive)] = _quota(quota_rng, int(positive.sum()), 0.5)

    def make_case(rng: np.random.Generator, i: int) -> tuple[_Case, str]:
        if positive[i]:
            case = _sample_case(rng, {"cardiomegaly": 0.1, "effusion": 0.15, "devices": 0.1, "ap": 0.45})
            case.consolidation = 2 if two_boxes[i] else 1
            return case, "Lung Opacity"
        if rng.random() < 0.45:
            return _sample_case(rng, {"ap": 0.3}), "Normal"
        # Abnormal without opacity: some other finding that the image shows.
        case = _sample_case(rng, {"cardiomegaly": 0.5, "effusion": 0.3, "devices": 0.3, "pneumothorax": 0.1, "ap": 0.4})
        if case.consolidation or not (case.cardiomegaly or case.effusion or case.support_devices or case.pneumothorax):
            case.cardiomegaly, case.consolidation = True, 0
        return case, "No Lung Opacity / Not Normal"

    def uids(rng: np.random.Generator, i: int) -> tuple[str, ...]:
        pid = _uuid(rng)
        return pid, pid, _uid_2_25(rng), _uid_2_25(rng), _uid_2_25(rng)

    return _square_plan(seed, "rsna", count, make_case, uids)


def _square_header(item: _SquareImage, size: int, spacing: float, description: str) -> dict[str, Any]:
    """Headers of the 8-bit Kaggle-style files (RSNA and SIIM look alike)."""
    return {
        "StudyDate": "19010101",
        "StudyTime": "000000.00",
        "AccessionNumber": "",
        "Modality": "CR",
        "ConversionType": "WSD",
        "ReferringPhysicianName": "",
        "SeriesDescription": description,
        "PatientName": item.patient_id,
        "PatientID": item.patient_id,
        "PatientBirthDate": "",
        "PatientSex": item.sex,
        "PatientAge": f"{item.age:03d}Y",
        "BodyPartExamined": "CHEST",
        "ViewPosition": item.case.projection,
        "StudyInstanceUID": item.study_uid,
        "SeriesInstanceUID": item.series_uid,
        "StudyID": "",
        "SeriesNumber": 1,
        "InstanceNumber": 1,
        "PatientOrientation": "",
        "PixelSpacing": [_ds(spacing), _ds(spacing)],
        **_pixel_module(size, size, 8, "MONOCHROME2"),
    }


def _write_rsna(root: Path, plan: list[_SquareImage], image_size: int, bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["rsna"]
    label_rows, class_rows = [], []
    counts: Counter = Counter()
    for item in plan:
        phantom = _render_frontal(item.seed, image_size, image_size, item.case)
        header = _square_header(item, image_size, 0.168 * 1024 / image_size, f"view: {item.case.projection}")
        _save_dicom(out / "stage_2_train_images" / f"{item.image_id}.dcm", _to_uint8(phantom.image), header,
                    _CR_SOP_CLASS, item.sop_uid)  # fmt: skip
        if phantom.boxes:
            for x, y, w, h in phantom.boxes:  # one row per box, floats as in the real file
                label_rows.append([item.image_id, f"{x:.1f}", f"{y:.1f}", f"{w:.1f}", f"{h:.1f}", 1])
                class_rows.append([item.image_id, item.label])
        else:
            label_rows.append([item.image_id, "", "", "", "", 0])
            class_rows.append([item.image_id, item.label])
        counts[f"class: {item.label}"] += 1
        counts["boxes"] += len(phantom.boxes)
        counts["images"] += 1
        bar.update()
    _write_csv(out / "stage_2_train_labels.csv", RSNA_LABEL_COLUMNS, label_rows)
    _write_csv(out / "stage_2_detailed_class_info.csv", ("patientId", "class"), class_rows)
    return dict(sorted(counts.items()))


# ============================================================================ SIIM-ACR Pneumothorax


def _plan_siim(seed: int, count: int, image_size: int) -> list[_SquareImage]:
    quota_rng = _rng(seed, _STREAM["siim"], 0)
    positive = _quota(quota_rng, count, 0.35)
    # About a quarter of the positive images have two regions (bilateral): several CSV rows.
    two_regions = np.zeros(count, dtype=bool)
    two_regions[np.flatnonzero(positive)] = _quota(quota_rng, int(positive.sum()), 0.25)

    def make_case(rng: np.random.Generator, i: int) -> tuple[_Case, str]:
        case = _sample_case(rng, {"cardiomegaly": 0.1, "effusion": 0.1, "devices": 0.15, "ap": 0.3})
        if positive[i]:
            case.pneumothorax = ("right", "left") if two_regions[i] else _pick(rng, [("right",), ("left",)])
            case.effusion = ()  # keep the air region free of fluid
            case.pneumothorax_size = _pick(rng, ["small", "moderate", "large"], [0.4, 0.35, 0.25])
            return case, "positive"
        return case, "negative"

    def uids(rng: np.random.Generator, i: int) -> tuple[str, ...]:
        # Dotted UIDs shaped like the challenge's (root.1.<kind>.<site>.<n>.<time>.<rand>).
        n, t = 1000 + 7 * i + int(rng.integers(0, 7)), 1517875000 + 13 * i + int(rng.integers(0, 13))
        tail = f"{n}.{t}.{int(rng.integers(100000, 999999))}"
        study, series, sop = (f"{_UID_ROOT}.1.{k}.8323329.{tail}" for k in (2, 3, 4))
        return sop, _uuid(rng), study, series, sop

    return _square_plan(seed, "siim", count, make_case, uids)


def _write_siim(root: Path, plan: list[_SquareImage], image_size: int, bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["siim"]
    lines = [SIIM_HEADER]
    counts: Counter = Counter()
    for item in plan:
        phantom = _render_frontal(item.seed, image_size, image_size, item.case)
        header = _square_header(item, image_size, 0.168 * 1024 / image_size, f"view: {item.case.projection}")
        path = out / "dicom-images-train" / item.study_uid / item.series_uid / f"{item.image_id}.dcm"
        _save_dicom(path, _to_uint8(phantom.image), header, _CR_SOP_CLASS, item.sop_uid)
        regions = [r for r in phantom.pneumothorax_regions if r.any()]
        # One row per region, "-1" for none; the real file writes ", " between the columns.
        for rle in [rle_encode(r) for r in regions] or [EMPTY_RLE]:
            lines.append(f"{item.image_id}, {rle}")
        counts["images"] += 1
        counts["positive images" if regions else "negative images"] += 1
        counts["regions"] += len(regions)
        counts["images with 2 regions"] += len(regions) == 2
        bar.update()
    (out / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return dict(sorted(counts.items()))


# ============================================================================ driver


def _generate(
    root: Path,
    num_studies: int,
    seed: int,
    image_size: int,
    progress: bool = True,
    counts: dict[str, int] | None = None,
) -> dict[str, dict[str, int]]:
    """Write all four data sets under ``root``; return the per-data-set summary."""
    n = _counts(num_studies, counts)
    mimic = _plan_mimic(seed, num_studies, image_size)
    chexpert = _plan_chexpert(seed, n["chexpert-train"], n["chexpert-valid"], image_size)
    rsna = _plan_rsna(seed, n["rsna-pneumonia"], image_size)
    siim = _plan_siim(seed, n["siim-pneumothorax"], image_size)
    total = sum(len(s.images) for s in mimic) + len(chexpert) + len(rsna) + len(siim)
    summary = {}
    with tqdm(total=total, desc="demo data", unit="img", disable=not progress) as bar:
        summary[DATASET_DIRS["mimic"]] = _write_mimic(root, mimic, bar)
        summary[DATASET_DIRS["chexpert"]] = _write_chexpert(root, chexpert, bar)
        summary[DATASET_DIRS["rsna"]] = _write_rsna(root, rsna, image_size, bar)
        summary[DATASET_DIRS["siim"]] = _write_siim(root, siim, image_size, bar)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
