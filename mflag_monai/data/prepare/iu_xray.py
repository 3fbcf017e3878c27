"""IU X-ray (Open-i, Indiana University chest X-ray collection) → image–report datalist for pre-training.

Format: docs/method.md#iu-x-ray.

Two layouts are read:

* the official Open-i release: ``NLMCXR_reports.tgz`` unpacked to ``ecgen-radiology/<n>.xml`` (one report each),
  with the images of ``NLMCXR_png.tgz`` (``<parentImage id>.png``) and/or ``NLMCXR_dcm.tgz`` (DICOM,
  ``<n>_IM-....dcm``) anywhere under the root;
* the widely used redistribution: ``indiana_reports.csv``, ``indiana_projections.csv`` and ``images_normalized/``
  (PNG named ``<n>_IM-....dcm.png``).

The collection has no official split: reports are split at random (seeded), one report standing for one patient.
"""

from __future__ import annotations

import html
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from .registry import PreparedDatalist, register_preparer, walk_files
from .splits import SPLIT_NAMES, grouped_fraction, seeded_split
from .tables import read_csv_rows

logger = logging.getLogger(__name__)

__all__ = [
    "DEID_REPLACEMENT",
    "FRONTAL_VIEWS",
    "IU_SPLIT_FRACTIONS",
    "clean_iu_text",
    "detect_iu_xray",
    "iu_image_id",
    "prepare_iu_xray",
    "read_iu_xml",
]

REPORTS_DIR = "ecgen-radiology"
REPORTS_CSV, PROJECTIONS_CSV = "indiana_reports.csv", "indiana_projections.csv"
#: ``ViewPosition`` values kept (the DICOMs also hold LL, LATERAL, RL and blanks).
FRONTAL_VIEWS = ("PA", "AP")
#: What the de-identification token ``XXXX`` becomes: MIMIC-CXR's ``___``, so that removed text looks the same to
#: the language model in both collections.
DEID_REPLACEMENT = "___"
#: Shares of reports in training / validation / test (the collection has no official split).
IU_SPLIT_FRACTIONS = (0.7, 0.1, 0.2)

_DEID = re.compile(r"X{4,}")  # the token, also doubled or inside words ("x-XXXX")
_IMAGE_SUFFIXES = (".png", ".dcm")


def iu_image_id(name: str) -> str:
    """The one id of an image in every layout: ``<n>_IM-....``.

    The XML names an image ``CXR<n>_IM-...`` (``CXR1_1_IM-0001-3001`` for a few reports), the DICOM file is
    ``<n>_IM-....dcm`` and the redistribution's PNG ``<n>_IM-....dcm.png``.
    """
    stem = Path(name).name
    while Path(stem).suffix.lower() in _IMAGE_SUFFIXES:
        stem = stem[: -len(Path(stem).suffix)]
    match = re.fullmatch(r"CXR(\d+)_(.+)", stem)
    if match:
        number, rest = match.groups()
        return rest if rest.startswith(f"{number}_") else f"{number}_{rest}"
    return stem


def clean_iu_text(text: str | None, deid_replacement: str | None = DEID_REPLACEMENT) -> str:
    """A report section as text: entities decoded, white space collapsed, ``XXXX`` replaced by ``deid_replacement``
    (kept when ``None``); empty when nothing but de-identified tokens and punctuation is left."""
    text = " ".join(html.unescape(text or "").split())  # entities escaped twice survive the XML parser
    if not re.search(r"[A-Za-z0-9]", _DEID.sub("", text)):
        return ""
    return _DEID.sub(deid_replacement, text) if deid_replacement is not None else text


def read_iu_xml(path: str | os.PathLike) -> dict:
    """One Open-i report: ``{"uid", "sections": {label (lower case): raw text}, "mesh_major", "mesh_minor",
    "images": [parentImage id, ...]}``.

    Raises:
        ET.ParseError: the file is not well-formed XML.
    """
    root = ET.parse(path).getroot()
    uid_el = root.find("uId")
    uid = uid_el.get("id") if uid_el is not None and uid_el.get("id") else f"CXR{Path(path).stem}"
    sections = {}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().lower()
        if label:
            sections[label] = "".join(el.itertext())
    mesh = root.find("MeSH")
    terms = {kind: [] for kind in ("major", "minor")}
    for el in mesh if mesh is not None else ():
        if el.tag in terms and (el.text or "").strip():
            terms[el.tag].append(" ".join(el.text.split()))
    images = [el.get("id") for el in root.iter("parentImage") if el.get("id")]
    return {
        "uid": uid,
        "sections": sections,
        "mesh_major": terms["major"],
        "mesh_minor": terms["minor"],
        "images": images,
    }


def _find(root: Path, name: str, directory: bool) -> Path | None:
    """``root/name`` or ``root/<child>/name`` (the archives unpack into a folder of their own or not)."""
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        candidate = base / name
        if candidate.is_dir() if directory else candidate.is_file():
            return candidate
    return None


def detect_iu_xray(root: Path) -> bool:
    """Whether ``root`` holds IU X-ray in one of the layouts read here."""
    root = Path(root)
    return root.is_dir() and bool(_find(root, REPORTS_DIR, True) or _find(root, REPORTS_CSV, False))


def _index_images(root: Path) -> dict[str, dict[str, Path]]:
    """``{image id: {".png": path, ".dcm": path}}`` for every PNG and DICOM under ``root``."""
    index: dict[str, dict[str, Path]] = {}
    for path in sorted(walk_files(root)):
        suffix = path.suffix.lower()
        if suffix in _IMAGE_SUFFIXES and path.is_file():
            index.setdefault(iu_image_id(path.name), {}).setdefault(suffix, path)
    return index


def _view_position(path: Path) -> str | None:
    """The DICOM's ``ViewPosition`` (upper case, may be blank); ``None`` when the header cannot be read."""
    from ...utils.dicom import read_dicom_header

    try:
        ds = read_dicom_header(path, ["ViewPosition"])
    except Exception:  # noqa: BLE001  (any unreadable header is one reason to drop the image)
        return None
    return str(getattr(ds, "ViewPosition", "") or "").strip().upper()


def _reports_from_xml(reports_dir: Path, counts: Counter) -> list[dict]:
    """Every XML report as ``{"uid", "sections", "mesh_major", "mesh_minor", "images": [(image id, view)]}``;
    ``view`` is ``None`` here (it comes from the DICOM)."""
    files = sorted(reports_dir.glob("*.xml"), key=lambda p: (len(p.stem), p.stem))  # 1.xml, 2.xml, ..., 10.xml
    reports = []
    for path in files:
        try:
            report = read_iu_xml(path)
        except ET.ParseError as err:
            counts["reports dropped: unreadable XML"] += 1
            logger.warning("%s: not readable as XML (%s); report skipped", path, err)
            continue
        report["images"] = [(iu_image_id(i), None) for i in report["images"]]
        reports.append(report)
    return reports


def _reports_from_csv(reports_csv: Path) -> list[dict]:
    """The redistribution's reports; images and views from ``indiana_projections.csv`` beside it."""
    projections_csv = reports_csv.parent / PROJECTIONS_CSV
    if not projections_csv.is_file():
        raise FileNotFoundError(f"{projections_csv} not found: it lists the images of {REPORTS_CSV}'s reports")
    images: dict[str, list[tuple[str, str]]] = {}
    for row in read_csv_rows(projections_csv, ("uid", "filename", "projection")):
        images.setdefault(row["uid"].strip(), []).append((iu_image_id(row["filename"].strip()), row["projection"]))
    reports = []
    for row in read_csv_rows(reports_csv, ("uid", "findings", "impression")):
        uid = row["uid"].strip()
        reports.append(
            {
                "uid": f"CXR{uid}",
                "sections": {k: row.get(k) or "" for k in ("findings", "impression", "indication", "comparison")},
                "mesh_major": [t.strip() for t in (row.get("MeSH") or "").split(";") if t.strip()],
                "mesh_minor": [],
                "images": images.get(uid, []),
            }
        )
    return reports


@register_preparer("iu-xray")
def prepare_iu_xray(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    fraction: float = 1.0,
    seed: int = 42,
    split_fractions: tuple[float, float, float] = IU_SPLIT_FRACTIONS,
    deid_replacement: str | None = DEID_REPLACEMENT,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    **_: object,
) -> PreparedDatalist:
    """Pair each frontal IU X-ray image with its report (impression, then findings).

    Frontal views are chosen where the data say which view an image is: the DICOM ``ViewPosition`` (official
    release, when the DICOMs are under ``root``) or the ``projection`` column (redistribution). An image without
    such a source (PNG only, or a blank ``ViewPosition``) is kept, and the summary warns how many were.

    Args:
        root: the folder holding ``ecgen-radiology/`` and the PNG and/or DICOM images, or ``indiana_reports.csv``,
            ``indiana_projections.csv`` and ``images_normalized/`` (each may sit in a sub-folder of ``root``).
        out: unused (no files are written besides the datalist).
        fraction: share of the training reports kept, in ``(0, 1]``.
        seed: seed of the split and of the fraction draw.
        split_fractions: shares of reports in training / validation / test.
        deid_replacement: what ``XXXX`` becomes (:data:`DEID_REPLACEMENT`); ``None`` keeps it.
        views: the ``ViewPosition`` values kept.

    Returns:
        Entries ``{"image", "report", "patient_id", "study_id", "image_id", "view", "mesh", "mesh_minor"}`` (MeSH
        terms ``;``-separated, as the redistribution writes them) under ``training`` / ``validation`` / ``test``.

    Raises:
        FileNotFoundError: ``root`` holds neither layout.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"IU X-ray root {root} is not a folder")
    reports_dir, reports_csv = _find(root, REPORTS_DIR, True), _find(root, REPORTS_CSV, False)
    if reports_dir is None and reports_csv is None:
        raise FileNotFoundError(
            f"{root} holds neither {REPORTS_DIR}/ (NLMCXR_reports.tgz unpacked) nor {REPORTS_CSV}: --root must be "
            "the IU X-ray folder"
        )
    counts: Counter[str] = Counter()
    layout = "xml" if reports_dir is not None else "csv"  # the official files win when both are there
    reports = _reports_from_xml(reports_dir, counts) if reports_dir else _reports_from_csv(reports_csv)
    index = _index_images(root)

    entries: list[dict] = []
    n_images = 0
    for report in reports:
        n_images += len(report["images"])
        impression = clean_iu_text(report["sections"].get("impression"), deid_replacement)
        findings = clean_iu_text(report["sections"].get("findings"), deid_replacement)
        text = " ".join(t for t in (impression, findings) if t)
        if not text:
            counts["reports dropped: no impression and no findings"] += 1
            continue
        if not report["images"]:
            counts["reports dropped: no image listed"] += 1
            continue
        kept, found = [], 0
        for image_id, projection in report["images"]:
            files = index.get(image_id, {})
            if not files:
                counts["images dropped: file missing"] += 1
                continue
            found += 1
            if projection is not None:  # redistribution: the projections CSV says
                view = projection.strip()
                frontal = view.lower() == "frontal"
            elif ".dcm" in files:
                view = _view_position(files[".dcm"])
                if view is None:
                    counts["images dropped: unreadable DICOM header"] += 1
                    continue
                frontal = view in views or not view
                if not view:
                    counts["warning: images kept without a view (blank ViewPosition)"] += 1
            else:
                view, frontal = "", True
                counts["warning: images kept without a view (PNG without its DICOM)"] += 1
            if not frontal:
                counts["images dropped: not a frontal view"] += 1
                continue
            kept.append(
                {
                    "image": str(files.get(".png", files.get(".dcm"))),
                    "report": text,
                    "patient_id": report["uid"],
                    "study_id": report["uid"],
                    "image_id": image_id,
                    "view": view,
                    "mesh": ";".join(report["mesh_major"]),
                    "mesh_minor": ";".join(report["mesh_minor"]),
                }
            )
        if not kept:
            counts["reports dropped: no image file" if not found else "reports dropped: no frontal image"] += 1
            continue
        entries.extend(kept)

    split = seeded_split(entries, split_fractions, seed=seed, group_key="patient_id")
    datalist = {
        "training": grouped_fraction(split["training"], fraction, seed=seed, group_key="patient_id"),
        "validation": split["validation"],
        "test": split["test"],
    }
    warnings = {k: v for k, v in counts.items() if k.startswith("warning:")}
    for key, n in sorted(warnings.items()):
        logger.warning("IU X-ray: %d %s: lateral views may be among them", n, key.removeprefix("warning: "))
    dropped = {k: v for k, v in counts.items() if not k.startswith("warning:")}
    n_kept = len({e["patient_id"] for e in entries})
    summary: dict[str, int | str] = {
        "dataset": "iu-xray",
        "root": str(root),
        "layout": f"{REPORTS_DIR}/*.xml" if layout == "xml" else f"{REPORTS_CSV} + {PROJECTIONS_CSV}",
        "overview": f"{len(reports) + counts['reports dropped: unreadable XML']} reports, {n_images} images; "
        f"kept {n_kept} reports, {len(entries)} images; dropped: "
        + (
            ", ".join(f"{k.split(': ', 1)[1]} ({k.split(' ', 1)[0]}) {v}" for k, v in sorted(dropped.items())) or "none"
        ),
        "reports": len(reports) + counts["reports dropped: unreadable XML"],
        "images": n_images,
        "fraction": str(fraction),
        "seed": seed,
        **dict(sorted(dropped.items())),
        **dict(sorted(warnings.items())),
        "training before fraction": len(split["training"]),
    }
    for name in SPLIT_NAMES:
        summary[f"kept: {name}"] = len(datalist[name])
        summary[f"kept: {name} reports"] = len({e["patient_id"] for e in datalist[name]})
    return PreparedDatalist(datalist, summary)
