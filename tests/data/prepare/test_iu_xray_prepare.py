"""IU X-ray (Open-i) preparation: the official XML + PNG / DICOM release and the CSV redistribution."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pydicom
import pytest

from mflag_monai.data import get_preparer
from mflag_monai.data.demo import write_iu_xray_demo
from mflag_monai.data.prepare.iu_xray import clean_iu_text, iu_image_id, prepare_iu_xray, read_iu_xml

SPLITS = ("training", "validation", "test")
SIZE = 64


def entries(prepared) -> list[dict]:
    return [e for name in SPLITS for e in prepared.datalist[name]]


def official_reports(root: Path) -> dict[str, dict]:
    """What the XML files say, read here independently of the preparer: uid -> impression, findings, image ids."""
    reports = {}
    for path in sorted((root / "ecgen-radiology").glob("*.xml")):
        doc = ET.parse(path).getroot()
        text = {el.get("Label"): (el.text or "").strip() for el in doc.iter("AbstractText")}
        reports[doc.find("uId").get("id")] = {
            "impression": text.get("IMPRESSION", ""),
            "findings": text.get("FINDINGS", ""),
            "images": [el.get("id") for el in doc.iter("parentImage")],
        }
    return reports


def has_words(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]", text.replace("XXXX", "")))


@pytest.fixture(scope="module")
def png_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iu_xray_demo(tmp_path_factory.mktemp("iu_png"), num_reports=24, image_size=SIZE, images=("png",))


@pytest.fixture(scope="module")
def dcm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iu_xray_demo(tmp_path_factory.mktemp("iu_dcm"), num_reports=24, image_size=SIZE, images=("dcm",))


def test_every_report_with_text_and_an_image_reaches_the_datalist(png_root: Path) -> None:
    prepared = prepare_iu_xray(png_root)
    reports = official_reports(png_root)
    pngs = {p.stem for p in png_root.rglob("*.png")}
    expected = {
        uid
        for uid, r in reports.items()
        if (has_words(r["impression"]) or has_words(r["findings"])) and any(i in pngs for i in r["images"])
    }
    got = entries(prepared)
    assert {e["patient_id"] for e in got} == expected and len(expected) >= 18
    # PNG only: no view source, so every image with a file is kept, once
    assert sorted(Path(e["image"]).stem for e in got) == sorted(
        i for uid in expected for i in reports[uid]["images"] if i in pngs
    )
    for e in got:
        r = reports[e["patient_id"]]
        first = clean_iu_text(r["impression"]) or clean_iu_text(r["findings"])
        assert e["report"].startswith(first), (e["report"], first)  # impression first
        assert "XXXX" not in e["report"]
        assert e["image_id"] == iu_image_id(Path(e["image"]).name) and e["view"] == ""
    assert any("___" in e["report"] for e in got)  # the de-identification token, as MIMIC-CXR writes it
    assert any("A nodule < 5 mm is unchanged." in e["report"] for e in got)  # &lt; in the file
    s = prepared.summary
    assert s["reports"] == 24 and s["images"] == sum(len(r["images"]) for r in reports.values())
    assert s["reports dropped: no impression and no findings"] == 1  # only "XXXX." in it
    assert s["reports dropped: no image listed"] == 1 and s["reports dropped: no image file"] == 1
    assert s["warning: images kept without a view (PNG without its DICOM)"] == len(got)
    assert "24 reports" in s["overview"] and "no image listed (reports) 1" in s["overview"]


def test_dicom_view_position_chooses_frontal_views(dcm_root: Path) -> None:
    prepared = prepare_iu_xray(dcm_root)
    got = entries(prepared)
    views = {p.stem: pydicom.dcmread(p, stop_before_pixels=True).ViewPosition for p in dcm_root.rglob("*.dcm")}
    kept_reports = {e["patient_id"] for e in got}
    assert {Path(e["image"]).stem for e in got} == {
        stem for stem, view in views.items() if view in ("PA", "AP", "") and f"CXR{stem.split('_')[0]}" in kept_reports
    }
    assert all(e["view"] == views[Path(e["image"]).stem] for e in got)
    with_text = {uid for uid, r in official_reports(dcm_root).items() if has_words(r["impression"] + r["findings"])}
    laterals = sum(v in ("LL", "LATERAL") and f"CXR{stem.split('_')[0]}" in with_text for stem, v in views.items())
    assert laterals > 0 and prepared.summary["images dropped: not a frontal view"] == laterals
    blanks = sum(e["view"] == "" for e in got)
    assert blanks > 0 and prepared.summary["warning: images kept without a view (blank ViewPosition)"] == blanks


def test_png_with_dicom_beside_it(tmp_path: Path) -> None:
    root = write_iu_xray_demo(tmp_path / "iu", num_reports=8, image_size=SIZE, images=("png", "dcm"))
    got = entries(prepare_iu_xray(root))
    assert got and all(e["image"].endswith(".png") for e in got)  # the PNG is read, the DICOM says the view
    assert {e["view"] for e in got} <= {"PA", "AP", ""} and any(e["view"] for e in got)


def test_csv_redistribution(tmp_path: Path) -> None:
    root = write_iu_xray_demo(tmp_path / "iu", num_reports=12, image_size=SIZE, layout="csv")
    prepared = get_preparer("iu-xray")(root)
    with open(root / "indiana_projections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    projections = {row["filename"]: row["projection"] for row in rows}
    got = entries(prepared)
    assert got and all(projections[Path(e["image"]).name] == "Frontal" == e["view"] for e in got)
    with open(root / "indiana_reports.csv", newline="") as f:
        reports = list(csv.DictReader(f))
    mesh = {f"CXR{row['uid']}": row["MeSH"] for row in reports}
    assert all(e["mesh"] == mesh[e["patient_id"]] for e in got)
    # a report without text is dropped whole, before its images are looked at: its lateral is not counted as one
    has_text = {r["uid"] for r in reports if clean_iu_text(r["findings"]) or clean_iu_text(r["impression"])}
    laterals = sum(row["projection"] == "Lateral" and row["uid"] in has_text for row in rows)
    assert prepared.summary["images dropped: not a frontal view"] == laterals


def test_xml_fields_entities_and_image_ids(tmp_path: Path) -> None:
    xml = tmp_path / "ecgen-radiology" / "7.xml"
    xml.parent.mkdir()
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<eCitation><uId id="CXR7"/><MedlineCitation><Article><Abstract>'
        '<AbstractText Label="FINDINGS">Heart &amp; lungs normal. Size &lt;1 cm. XXXX XXXX.</AbstractText>'
        '<AbstractText Label="IMPRESSION">Normal chest x-XXXX.</AbstractText><AbstractText Label="INDICATION"/>'
        "</Abstract></Article></MedlineCitation><MeSH><major>Lung/hypoinflation</major><major>Opacity/lung</major>"
        "<minor>Spine/degenerative</minor></MeSH>"
        '<parentImage id="CXR7_IM-2263-1001"><caption>PA</caption></parentImage>'
        '<parentImage id="CXR7_IM-2263-2001"/></eCitation>\n'
    )
    report = read_iu_xml(xml)
    assert report["uid"] == "CXR7" and report["images"] == ["CXR7_IM-2263-1001", "CXR7_IM-2263-2001"]
    assert report["sections"]["findings"] == "Heart & lungs normal. Size <1 cm. XXXX XXXX."
    assert report["mesh_major"] == ["Lung/hypoinflation", "Opacity/lung"] and report["mesh_minor"] == [
        "Spine/degenerative"
    ]
    assert clean_iu_text(report["sections"]["impression"]) == "Normal chest x-___."
    assert clean_iu_text(report["sections"]["impression"], deid_replacement=None) == "Normal chest x-XXXX."
    assert (
        clean_iu_text("XXXX. XXXX, XXXX") == "" and clean_iu_text("&gt; 2 cm") == "> 2 cm"
    )  # escaped twice in the file
    # one id for an image in every layout
    assert iu_image_id("CXR1_1_IM-0001-3001") == iu_image_id("1_IM-0001-3001.dcm.png") == "1_IM-0001-3001"
    assert iu_image_id("CXR7_IM-2263-1001.png") == iu_image_id("7_IM-2263-1001.dcm") == "7_IM-2263-1001"

    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "CXR7_IM-2263-1001.png")
    (tmp_path / "ecgen-radiology" / "8.xml").write_text("<eCitation><uId id='CXR8'/>")  # truncated
    prepared = prepare_iu_xray(tmp_path)
    (entry,) = entries(prepared)
    assert entry["report"] == "Normal chest x-___. Heart & lungs normal. Size <1 cm. ___ ___."
    assert entry["mesh"] == "Lung/hypoinflation;Opacity/lung" and entry["mesh_minor"] == "Spine/degenerative"
    assert prepared.summary["reports dropped: unreadable XML"] == 1 and prepared.summary["reports"] == 2
    assert prepared.summary["images dropped: file missing"] == 1


def test_split_by_report_reproducible_and_nested_fractions(png_root: Path) -> None:
    full = prepare_iu_xray(png_root)
    by_split = {name: {e["patient_id"] for e in full.datalist[name]} for name in SPLITS}
    assert all(
        not (by_split[a] & by_split[b])
        for a, b in (("training", "validation"), ("training", "test"), ("validation", "test"))
    )
    assert prepare_iu_xray(png_root).datalist == full.datalist
    half = prepare_iu_xray(png_root, fraction=0.5)
    kept = {e["patient_id"] for e in half.datalist["training"]}
    assert kept < by_split["training"] and len(kept) == round(len(by_split["training"]) / 2 + 1e-9)
    # a kept report keeps all its images
    assert len(half.datalist["training"]) == sum(e["patient_id"] in kept for e in full.datalist["training"])
    assert half.datalist["validation"] == full.datalist["validation"]


def test_demo_is_deterministic(tmp_path: Path) -> None:
    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
        }

    a = write_iu_xray_demo(tmp_path / "a", num_reports=6, image_size=SIZE)
    b = write_iu_xray_demo(tmp_path / "b", num_reports=6, image_size=SIZE)
    assert digest(a) == digest(b)


@pytest.mark.slow
def test_cli(tmp_path: Path) -> None:
    root = tmp_path / "iu"
    cli = [sys.executable, "-m", "mflag_monai.data"]
    subprocess.run([*cli, "demo", "--layout", "iu-xray", "--out", str(root), "--num-studies", "8", "--image-size", "64"],
                   check=True, capture_output=True)  # fmt: skip
    res = subprocess.run(
        [*cli, "prepare", "iu-xray", "--root", str(root)], cwd=tmp_path, check=False, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "overview" in res.stdout and "8 reports" in res.stdout
    content = json.loads((tmp_path / "iu-xray.json").read_text())  # --out defaults to DATASET.json
    assert content["summary"]["dataset"] == "iu-xray" and content["training"]
    res = subprocess.run(
        [*cli, "prepare", "iu-xray", "--root", str(tmp_path / "nothing")], check=False, capture_output=True, text=True
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and str(tmp_path / "nothing") in res.stderr
