"""Demo data in the layouts of the two public image–report collections (SPEC §3), for tests and for trying
``prepare iu-xray`` / ``prepare chexpert-plus`` without downloading them.

* :func:`write_iu_xray_demo`: IU X-ray as Open-i ships it (``ecgen-radiology/<n>.xml``, ``<parentImage id>.png``,
  DICOMs with ``ViewPosition``), or as the redistribution (``indiana_reports.csv``, ``indiana_projections.csv``,
  ``images/images_normalized/``).
* :func:`write_chexpert_plus_demo`: ``df_chexpert_plus_240401.csv`` with PNG (and optionally DICOM) images.

Images are the demo's phantom radiographs and every report sentence describes what the phantom drew. A few reports
are left without text, without images or without image files, as in the real collections. The same arguments give
the same files.
"""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from .demo import (
    _CR_SOP_CLASS,
    _pick,
    _pixel_module,
    _render_frontal,
    _render_lateral,
    _report_sentences,
    _rng,
    _sample_case,
    _save_dicom,
    _to_uint8,
    _uid_2_25,
)

__all__ = ["CHEXPERT_PLUS_CSV", "IU_LAYOUTS", "write_chexpert_plus_demo", "write_iu_xray_demo"]

#: ``layout`` values of :func:`write_iu_xray_demo`.
IU_LAYOUTS = ("xml", "csv")
CHEXPERT_PLUS_CSV = "df_chexpert_plus_240401.csv"
_STREAM = {"iu-xray": 11, "chexpert-plus": 12}  # apart from demo.py's streams
_P = {"cardiomegaly": 0.2, "effusion": 0.2, "consolidation": 0.15, "pneumothorax": 0.05, "devices": 0.1, "ap": 0.2}
_DEID_SENTENCES = ["There are no XXXX of a pleural effusion.", "XXXX are intact.", "Stable XXXX appearance."]
_MESH = {
    "Cardiomegaly": "Cardiomegaly/mild",
    "Pleural Effusion": "Pleural Effusion/small",
    "Consolidation": "Consolidation/lung",
    "Lung Opacity": "Opacity/lung",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Support Devices": "Catheters, Indwelling",
}


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_uint8(image), mode="L").save(path, format="PNG")


def _save_cr(path: Path, image: np.ndarray, view: str, rng: np.random.Generator) -> None:
    """A CR file as Open-i ships them: MONOCHROME1, 12 bits stored, ``ViewPosition`` possibly blank."""
    stored = (4095 - np.round(image * 4095.0)).astype(np.uint16)  # MONOCHROME1: high = dark
    rows, cols = image.shape
    header = {
        "Modality": "CR",
        "ViewPosition": view,
        "BodyPartExamined": "CHEST",
        "StudyInstanceUID": _uid_2_25(rng),
        "SeriesInstanceUID": _uid_2_25(rng),
        "PatientID": "",
        **_pixel_module(rows, cols, 12, "MONOCHROME1"),
    }
    _save_dicom(path, stored, header, _CR_SOP_CLASS, _uid_2_25(rng))


def _report(rng: np.random.Generator, image_size: int) -> tuple[np.ndarray, str, str, list[str]]:
    """A frontal phantom, its findings and impression text, and MeSH major terms."""
    case = _sample_case(rng, _P)
    phantom = _render_frontal(int(rng.integers(0, 2**31)), image_size, image_size, case)
    found, imp = _report_sentences(rng, phantom.findings, phantom.ctr, False)
    findings = [text for text, _ in found]
    if rng.random() < 0.4:  # the de-identification token, where the anonymiser took a word for a name or date
        findings.insert(int(rng.integers(0, len(findings) + 1)), _pick(rng, _DEID_SENTENCES))
    positive = sorted({name for _, labels in found + imp for name, v in labels.items() if v == 1.0})
    mesh = [_MESH[name] for name in positive if name in _MESH] or ["normal"]
    return phantom.image, " ".join(findings), " ".join(text for text, _ in imp), mesh


def write_iu_xray_demo(
    out_dir: str | os.PathLike,
    num_reports: int = 24,
    seed: int = 42,
    image_size: int = 96,
    layout: str = "xml",
    images: tuple[str, ...] = ("png", "dcm"),
) -> Path:
    """Write a small IU X-ray collection under ``out_dir`` and return that folder.

    Args:
        out_dir: the collection's root (created).
        num_reports: reports written (at least 6). Most have a frontal and a lateral image, some a frontal only;
            one has neither findings nor impression (only the ``XXXX`` token), one lists no image, one lists an
            image whose file is missing, one holds a ``<`` (an XML entity in the file).
        seed: the seed every choice and pixel derives from.
        image_size: image side in pixels.
        layout: ``"xml"``: the official Open-i release (``ecgen-radiology/``, ``NLMCXR_png/``, ``NLMCXR_dcm/``);
            ``"csv"``: the redistribution (``indiana_reports.csv``, ``indiana_projections.csv``,
            ``images/images_normalized/``).
        images: for ``"xml"``: ``"png"`` and/or ``"dcm"``. The DICOMs' ``ViewPosition`` is PA/AP for frontal and
            LL/LATERAL for lateral images, blank for about a third of them.
    """
    if layout not in IU_LAYOUTS:
        raise ValueError(f"layout must be one of {IU_LAYOUTS}, got {layout!r}")
    if num_reports < 6:
        raise ValueError("num_reports must be at least 6 (a few reports of each kind)")
    root = Path(out_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, _STREAM["iu-xray"])
    empty, no_image, missing_file, entity = 2, 3, 4, 5  # report numbers with a special case
    report_rows, projection_rows = [], []
    for n in range(1, num_reports + 1):
        frontal, findings, impression, mesh = _report(rng, image_size)
        frontal_view = "AP" if rng.random() < 0.2 else "PA"
        if n == empty:
            findings, impression = "", "XXXX."
        if n == entity:
            findings += " A nodule < 5 mm is unchanged."
        series = int(rng.integers(1, 3000))
        views = [("frontal", frontal_view)] + (
            [] if rng.random() < 0.2 else [("lateral", _pick(rng, ["LL", "LATERAL"]))]
        )
        if n == no_image:
            views = []
        if n == missing_file:
            views = views[:1]  # its only image has no file
        image_ids = []  # (parentImage id, canonical id, kind, view)
        for k, (kind, view) in enumerate(views):
            number = f"IM-{series:04d}-{k + 1}001"
            parent = f"CXR{n}_{n}_{number}" if n == 1 else f"CXR{n}_{number}"  # the first report's form
            image_ids.append((parent, f"{n}_{number}", kind, view))
        for k, (parent, canonical, kind, view) in enumerate(image_ids):
            pixels = (
                frontal if kind == "frontal" else _render_lateral(int(rng.integers(0, 2**31)), image_size, image_size)
            )
            blank = rng.random() < 1 / 3
            if n == missing_file and k == 0:
                continue  # listed in the report, no file
            if layout == "csv":
                _save_png(root / "images" / "images_normalized" / f"{canonical}.dcm.png", pixels)
                projection_rows.append([n, f"{canonical}.dcm.png", "Frontal" if kind == "frontal" else "Lateral"])
                continue
            if "png" in images:
                _save_png(root / "NLMCXR_png" / f"{parent}.png", pixels)
            if "dcm" in images:
                _save_cr(root / "NLMCXR_dcm" / str(n) / f"{canonical}.dcm", pixels, "" if blank else view, rng)
        caption = "Xray Chest PA and Lateral" if len(views) > 1 else f"Xray Chest {frontal_view}"
        sections = {
            "COMPARISON": _pick(rng, ["None.", "XXXX, XXXX", ""]),
            "INDICATION": _pick(rng, ["Positive TB test", "Chest pain", "XXXX-year-old male with cough."]),
            "FINDINGS": findings,
            "IMPRESSION": impression,
        }
        if layout == "csv":
            problems = ";".join(dict.fromkeys(term.split("/")[0] for term in mesh))
            report_rows.append([
                n, ";".join(mesh), problems, caption, sections["INDICATION"], sections["COMPARISON"],
                sections["FINDINGS"], sections["IMPRESSION"],
            ])  # fmt: skip
        else:
            _write_iu_xml(root / "ecgen-radiology" / f"{n}.xml", n, sections, mesh, image_ids, caption)
    if layout == "csv":
        header = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]
        _write_csv(root / "indiana_reports.csv", header, report_rows)
        _write_csv(root / "indiana_projections.csv", ["uid", "filename", "projection"], projection_rows)
    return root


def _write_iu_xml(
    path: Path, n: int, sections: dict[str, str], mesh: list[str], images: list[tuple], caption: str
) -> None:
    """One report in the Open-i XML schema (the elements the preparer reads, and a few around them)."""
    doc = ET.Element("eCitation")
    ET.SubElement(doc, "meta", type="rr")
    ET.SubElement(doc, "uId", id=f"CXR{n}")
    ET.SubElement(doc, "pmcId", id=str(n))
    ET.SubElement(doc, "docSource").text = "CXR"
    ET.SubElement(doc, "IUXRId", id=str(n))
    ET.SubElement(doc, "licenseType").text = "open-access"
    ET.SubElement(doc, "licenseURL").text = "http://creativecommons.org/licenses/by-nc-nd/4.0/"
    citation = ET.SubElement(doc, "MedlineCitation", Owner="Indiana University", Status="supplied by publisher")
    article = ET.SubElement(citation, "Article", PubModel="Electronic")
    ET.SubElement(article, "ArticleTitle").text = "Indiana University Chest X-ray Collection"
    abstract = ET.SubElement(article, "Abstract")
    for label, text in sections.items():
        ET.SubElement(abstract, "AbstractText", Label=label).text = text or None  # empty: <AbstractText .../>
    terms = ET.SubElement(doc, "MeSH")
    for term in mesh:
        ET.SubElement(terms, "major").text = term
    if mesh != ["normal"]:
        ET.SubElement(terms, "minor").text = "Thoracic Vertebrae/degenerative"
    for k, (parent, _, _, _) in enumerate(images, 1):
        image = ET.SubElement(doc, "parentImage", id=parent)
        ET.SubElement(image, "figureId").text = f"F{k}"
        ET.SubElement(image, "caption").text = caption
    ET.indent(doc, space="   ")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(doc).write(path, encoding="utf-8", xml_declaration=True)


def write_chexpert_plus_demo(
    out_dir: str | os.PathLike,
    num_patients: int = 16,
    seed: int = 42,
    image_size: int = 96,
    images: tuple[str, ...] = ("png",),
) -> Path:
    """Write a small CheXpert Plus collection under ``out_dir`` and return that folder.

    ``df_chexpert_plus_240401.csv`` lists one row per image (``path_to_image`` ending in ``.jpg`` as in the
    release; the files are ``PNG/<path>.png`` and, with ``"dcm"`` in ``images``, ``DICOM/<path_to_dcm>``). About one
    patient in eight is in the ``valid`` split. Some studies have a lateral image, some empty section columns with the
    sections only in ``report``, one no text at all.
    """
    if num_patients < 4:
        raise ValueError("num_patients must be at least 4")
    root = Path(out_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, _STREAM["chexpert-plus"])
    header = [
        "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order",
        "report", "section_findings", "section_impression", "age", "sex", "split",
    ]  # fmt: skip
    rows = []
    n_valid = max(1, num_patients // 8)
    for p in range(1, num_patients + 1):
        split = "valid" if p > num_patients - n_valid else "train"
        patient, sex, age = f"patient{p:05d}", _pick(rng, ["Male", "Female"]), int(rng.integers(18, 91))
        for order in range(1, int(rng.integers(1, 3)) + 1):
            frontal, findings, impression, _ = _report(rng, image_size)
            if p == 1 and order == 1:
                findings = impression = ""  # nothing: dropped
            report = f"NARRATIVE:\nCHEST 2 VIEWS\n\nFINDINGS: {findings}\n\nIMPRESSION:\n{impression}\n"
            if p == 2:  # the section columns left empty; the text is only in the report
                section_findings = section_impression = ""
            else:
                section_findings, section_impression = findings, impression
            projection = "AP" if rng.random() < 0.3 else "PA"
            views = [("Frontal", projection)] + ([("Lateral", "")] if rng.random() < 0.3 else [])
            for k, (view, ap_pa) in enumerate(views, 1):
                rel = f"{split}/{patient}/study{order}/view{k}_{view.lower()}"
                pixels = (
                    frontal
                    if view == "Frontal"
                    else _render_lateral(int(rng.integers(0, 2**31)), image_size, image_size)
                )
                if "png" in images:
                    _save_png(root / "PNG" / f"{rel}.png", pixels)
                if "dcm" in images:
                    _save_cr(root / "DICOM" / f"{rel}.dcm", pixels, ap_pa if view == "Frontal" else "LL", rng)
                rows.append([
                    f"{rel}.jpg", f"{rel}.dcm", view, ap_pa, patient, order, report if (findings or impression) else "",
                    section_findings, section_impression, age, sex, split,
                ])  # fmt: skip
    _write_csv(root / CHEXPERT_PLUS_CSV, header, rows)
    return root
