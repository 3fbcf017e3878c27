"""The demo IU X-ray collection, as Open-i ships it (``ecgen-radiology/<n>.xml``, ``<parentImage id>.png``, DICOMs
with ``ViewPosition``) or as the redistribution (``indiana_reports.csv``, ``indiana_projections.csv``,
``images/images_normalized/``), for trying ``prepare iu-xray`` without downloading it.

Images are phantom radiographs and every report sentence describes what the phantom drew. A few reports are left
without text, without images or without image files, as in the real collection. The same arguments give the same
files.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .common import STREAMS, pick, render_lateral, save_png, stream_rng, write_csv
from .dicom_writer import save_cr
from .reports import collection_report

__all__ = ["IU_LAYOUTS", "write_iu_xray_demo"]


#: ``layout`` values of :func:`write_iu_xray_demo`.
IU_LAYOUTS = ("xml", "csv")


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
    rng = stream_rng(seed, STREAMS["iu-xray"])
    empty, no_image, missing_file, entity = 2, 3, 4, 5  # report numbers with a special case
    report_rows, projection_rows = [], []
    for n in range(1, num_reports + 1):
        frontal, findings, impression, mesh = collection_report(rng, image_size)
        frontal_view = "AP" if rng.random() < 0.2 else "PA"
        if n == empty:
            findings, impression = "", "XXXX."
        if n == entity:
            findings += " A nodule < 5 mm is unchanged."
        series = int(rng.integers(1, 3000))
        views = [("frontal", frontal_view)] + (
            [] if rng.random() < 0.2 else [("lateral", pick(rng, ["LL", "LATERAL"]))]
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
                frontal if kind == "frontal" else render_lateral(int(rng.integers(0, 2**31)), image_size, image_size)
            )
            blank = rng.random() < 1 / 3
            if n == missing_file and k == 0:
                continue  # listed in the report, no file
            if layout == "csv":
                save_png(root / "images" / "images_normalized" / f"{canonical}.dcm.png", pixels)
                projection_rows.append([n, f"{canonical}.dcm.png", "Frontal" if kind == "frontal" else "Lateral"])
                continue
            if "png" in images:
                save_png(root / "NLMCXR_png" / f"{parent}.png", pixels)
            if "dcm" in images:
                save_cr(root / "NLMCXR_dcm" / str(n) / f"{canonical}.dcm", pixels, "" if blank else view, rng)
        caption = "Xray Chest PA and Lateral" if len(views) > 1 else f"Xray Chest {frontal_view}"
        sections = {
            "COMPARISON": pick(rng, ["None.", "XXXX, XXXX", ""]),
            "INDICATION": pick(rng, ["Positive TB test", "Chest pain", "XXXX-year-old male with cough."]),
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
        write_csv(root / "indiana_reports.csv", header, report_rows)
        write_csv(root / "indiana_projections.csv", ["uid", "filename", "projection"], projection_rows)
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
