"""DICOM in from a PACS and results back into it: demo radiographs stored in a started Orthanc, segmentation and
classification inference reading the study over DICOMweb (WADO-RS) and storing their DICOM SEG and SR back (STOW-RS),
found under the source study through QIDO-RS and equal to the files the runs wrote."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from helpers.bundles import run_bundle_cli
from mflag_monai.dicom import fetch_instances, find_instances, read_classification_sr, read_seg, store_instances

REPO = Path(__file__).resolve().parents[2]
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def _infer(bundle: str, tiny_bundles: Path, url: str, study: str, out: Path) -> None:
    result = run_bundle_cli(
        "run", [REPO / "bundles" / bundle / "configs" / "inference.yaml"], tiny_bundles / bundle,
        "--input_dicomweb", url, "--study_uid", study, "--store_dicomweb", url, "--output_dir", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]


@pytest.mark.slow
def test_segmentation_and_classification_from_and_back_to_orthanc(
    orthanc, tiny_bundles: Path, small_demo: Path, tmp_path: Path
) -> None:
    source = sorted((small_demo / "siim-pneumothorax").rglob("*.dcm"))[0]
    header = pydicom.dcmread(source, stop_before_pixels=True)
    study = header.StudyInstanceUID
    store_instances(orthanc.dicomweb, [source])

    _infer("segmentation", tiny_bundles, orthanc.dicomweb, study, tmp_path / "seg")
    _infer("classification", tiny_bundles, orthanc.dicomweb, study, tmp_path / "cls")  # the study now holds the SEG

    # the read images are the study's one radiograph (the SEG stored by the first run is not read as an image)
    fetched = sorted((tmp_path / "cls" / "dicomweb_inputs").rglob("*.dcm"))
    rows = list(csv.DictReader((tmp_path / "cls" / "predictions.csv").open()))
    assert len(fetched) == 2 and [r["SOPInstanceUID"] for r in rows] == [header.SOPInstanceUID]

    instances = find_instances(orthanc.dicomweb, study)
    by_class = {}
    for item in instances:
        by_class.setdefault(item["SOPClassUID"], []).append(item)
    assert len(by_class[SEGMENTATION_STORAGE]) == 1 and len(by_class[COMPREHENSIVE_3D_SR]) == 1
    assert {i["StudyInstanceUID"] for i in instances} == {study}

    # what Orthanc holds is what the runs wrote
    back = fetch_instances(orthanc.dicomweb, study, None, tmp_path / "back")
    by_uid = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in back}
    seg_local = next((tmp_path / "seg").glob("*_seg.dcm"))
    sr_local = next((tmp_path / "cls").glob("*_sr.dcm"))
    seg_remote = by_uid[by_class[SEGMENTATION_STORAGE][0]["SOPInstanceUID"]]
    sr_remote = by_uid[by_class[COMPREHENSIVE_3D_SR][0]["SOPInstanceUID"]]
    assert all(np.array_equal(a, b) for a, b in zip(read_seg(seg_local).values(), read_seg(seg_remote).values()))
    assert read_classification_sr(sr_remote) == read_classification_sr(sr_local)
    assert [f["probability"] for f in read_classification_sr(sr_remote)] == [
        float(rows[0][f["label"]]) for f in read_classification_sr(sr_local)
    ]
