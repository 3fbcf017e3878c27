"""Tests of the synthetic phantom and of the demo data sets written in the official formats."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from mflag_monai.data import demo
from mflag_monai.data.demo.common import render_frontal, sample_case
from mflag_monai.data.demo.mimic import plan_mimic
from mflag_monai.data.demo.phantom import render_chest_xray, render_lateral_xray
from mflag_monai.data.demo.reports import merge_labels, report_sentences
from mflag_monai.data.demo.rsna import plan_rsna
from mflag_monai.data.demo.siim import plan_siim
from mflag_monai.data.prepare.rle import rle_decode_union

N, SIZE, SEED = 24, 128, 7


# ----------------------------------------------------------------------------- helpers


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _header(path: Path) -> str:
    return path.read_text().split("\n", 1)[0]


def _as_viewed(ds: pydicom.Dataset) -> np.ndarray:
    """Modality values, negated for MONOCHROME1 so that bright = dense for every file."""
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return -values if ds.PhotometricInterpretation == "MONOCHROME1" else values


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "root"
    return demo.generate_demo_data(out, num_studies=N, seed=SEED, image_size=SIZE, progress=False)


# ----------------------------------------------------------------------------- phantom


def test_phantom_is_deterministic_and_in_range():
    a = render_chest_xray(320, rng=np.random.default_rng(3), consolidation=1, pneumothorax="left")
    b = render_chest_xray(320, rng=np.random.default_rng(3), consolidation=1, pneumothorax="left")
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.dtype == np.float32 and a.image.shape == (320, 320)
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    assert not np.array_equal(a.image, render_chest_xray(320, rng=4).image)
    assert render_chest_xray(96, 80, rng=1).image.shape == (96, 80)
    assert render_lateral_xray(96, 80, rng=1).shape == (96, 80)
    # speed is measured in the benchmarks (a wall-clock limit here fails on a busy machine); every finding renders
    full = render_chest_xray(320, rng=5, cardiomegaly=True, effusion="both", consolidation=2, support_devices=True)
    assert full.image.shape == (320, 320) and np.isfinite(full.image).all()


def test_phantom_normal_has_no_findings():
    p = render_chest_xray(128, rng=0)
    assert p.findings.is_normal and p.boxes == [] and not p.pneumothorax_mask.any()
    assert 0.35 <= p.ctr <= 0.48
    # Lungs (as viewed) are darker than the heart and the body around them.
    assert p.image[p.lung_mask > 0].mean() + 0.2 < p.image[p.heart_mask > 0].mean()


@pytest.mark.parametrize("seed", range(4))
def test_phantom_cardiomegaly_widens_the_heart(seed):
    normal = render_chest_xray(128, rng=seed)
    big = render_chest_xray(128, rng=seed, cardiomegaly=True)
    assert normal.ctr < 0.5 < big.ctr
    width = lambda m: np.ptp(np.flatnonzero(m.any(axis=0))) + 1  # noqa: E731
    assert width(big.heart_mask) > 1.2 * width(normal.heart_mask)
    # Measured on the mask against the lungs' outer extent, as a radiologist would.
    thorax = width(big.lung_mask > 0)
    assert width(big.heart_mask) / thorax > 0.5 > width(normal.heart_mask) / width(normal.lung_mask > 0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_phantom_effusion_fills_the_base(side):
    label = 1 if side == "right" else 2
    for seed in range(3):
        clear = render_chest_xray(128, rng=seed)
        wet = render_chest_xray(128, rng=seed, effusion=side, effusion_size="moderate")
        rows = np.flatnonzero((clear.lung_mask == label).any(axis=1))
        base = np.zeros_like(clear.lung_mask, dtype=bool)
        base[rows[-len(rows) // 5 :]] = True
        base &= clear.lung_mask == label
        assert wet.image[base].mean() > clear.image[base].mean() + 0.08
        assert wet.findings.effusion == (side,)
        large = render_chest_xray(128, rng=seed, effusion=side, effusion_size="large")
        assert large.image[base].mean() > clear.image[base].mean() + 0.2


def test_phantom_consolidation_box_is_bright():
    for seed in range(6):
        p = render_chest_xray(128, rng=seed, consolidation=2)
        assert len(p.boxes) == 2 and {c.side for c in p.findings.consolidations} == {"right", "left"}
        lungs = p.lung_mask > 0
        for x, y, w, h in p.boxes:
            box = np.zeros_like(lungs)
            box[y : y + h, x : x + w] = True
            assert (box & lungs).sum() > 0.5 * box.sum()  # mostly inside a lung
            # brighter than the rest of the lung, even a faint ground-glass one (contrast from 0.14)
            assert p.image[box].mean() > p.image[lungs & ~box].mean() + 0.015


def test_phantom_pneumothorax_is_dark_and_without_markings():
    for seed in range(6):
        p = render_chest_xray(128, rng=seed, pneumothorax="both", pneumothorax_size="small")
        assert len(p.pneumothorax_regions) == 2
        np.testing.assert_array_equal(p.pneumothorax_mask, p.pneumothorax_regions[0] | p.pneumothorax_regions[1])
        ptx = p.pneumothorax_mask.astype(bool)
        assert ptx.any() and not (ptx & (p.lung_mask == 0)).any()
        rest = (p.lung_mask > 0) & ~ptx
        assert p.image[ptx].mean() + 0.05 < p.image[rest].mean()
        # Upper pole of each region: mostly apical.
        for region, label in zip(p.pneumothorax_regions, (1, 2)):
            lung_rows = np.flatnonzero((p.lung_mask == label).any(axis=1))
            assert np.flatnonzero(region.any(axis=1))[0] <= lung_rows[0] + 2


def test_phantom_nodules_are_small_round_and_reported():
    for seed in range(4):
        p = render_chest_xray(256, rng=seed, nodule=[("right", "upper"), ("left", "lower")])
        assert [n.side for n in p.findings.nodules] == ["right", "left"]
        for n in p.findings.nodules:
            x, y, w, h = n.box
            assert 1 <= w <= 20 and 1 <= h <= 20 and abs(w - h) <= 3  # small and round
            assert 5 <= n.diameter_mm <= 30
        found, impression = report_sentences(np.random.default_rng(seed), p.findings, p.ctr, hedge=False)
        text = " ".join(t for t, _ in found + impression)
        assert "nodul" in text and f"{p.findings.nodules[0].diameter_mm}" in text.replace(".", "") or "cm" in text
        assert merge_labels(found + impression)["Lung Lesion"] == 1.0


def _auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Rank AUROC, symmetric: how well ``score`` separates the classes in either direction."""
    ranks = score.argsort().argsort() + 1.0
    n1, n0 = positive.sum(), (~positive).sum()
    auc = (ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return max(auc, 1 - auc)


def test_no_global_intensity_statistic_gives_a_finding_away():
    # Real findings are local: a probe on the image mean or spread must not be able to detect them. Exposure,
    # habitus, positioning and noise vary more than any finding moves these statistics.
    rng = np.random.default_rng(0)
    p = {"cardiomegaly": 0.3, "effusion": 0.3, "consolidation": 0.3, "nodule": 0.3, "pneumothorax": 0.3,
         "devices": 0.3, "ap": 0.4}  # fmt: skip
    stats, present = [], {k: [] for k in ("cardiomegaly", "effusion", "consolidation", "nodule", "pneumothorax")}
    for i in range(240):
        phantom = render_chest_xray(64, rng=np.random.default_rng(i), **sample_case(rng, p).phantom_kwargs())
        f, image = phantom.findings, phantom.image
        stats.append([image.mean(), image.std(), np.percentile(image, 10), np.percentile(image, 90)])
        for k, v in (("cardiomegaly", f.cardiomegaly), ("effusion", f.effusion), ("consolidation", f.consolidations),
                     ("nodule", f.nodules), ("pneumothorax", f.pneumothorax)):  # fmt: skip
            present[k].append(bool(v))
    stats = np.array(stats)
    for finding, flags in present.items():
        flags = np.array(flags)
        assert 20 < flags.sum() < 220, finding
        worst = max(_auroc(column, flags) for column in stats.T)
        assert worst < 0.7, f"{finding}: a global statistic separates it (AUROC {worst:.2f})"


# ----------------------------------------------------------------------------- generation


def test_generation_is_deterministic_and_cached(root, tmp_path):
    again = demo.generate_demo_data(tmp_path / "again", num_studies=N, seed=SEED, image_size=SIZE, progress=False)
    first = _hashes(root)
    assert first == _hashes(again)
    assert len(first) > 100

    other = demo.generate_demo_data(tmp_path / "other", num_studies=N, seed=SEED + 1, image_size=SIZE, progress=False)
    other_hashes = _hashes(other)
    assert sum(first.get(k) == v for k, v in other_hashes.items()) < 0.05 * len(other_hashes)

    # Same parameters: nothing is rewritten.
    stamp = json.loads((root / "demo.json").read_text())
    assert stamp["demo_version"] == demo.DEMO_VERSION
    assert stamp["parameters"] == {"num_studies": N, "seed": SEED, "image_size": SIZE}
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "demo.json", next(root.rglob("*.dcm")))}
    assert demo.ensure_demo_data(root, num_studies=N, seed=SEED, image_size=SIZE, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    # Different parameters: regenerated in place.
    demo.generate_demo_data(again, num_studies=N, seed=SEED + 1, image_size=SIZE, progress=False)
    assert _hashes(again) == other_hashes
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        demo.generate_demo_data(foreign, num_studies=N, seed=SEED, image_size=SIZE, progress=False)


def test_default_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MFLAG_MONAI_DEMO_DIR", str(tmp_path / "x"))
    assert demo.default_demo_dir() == tmp_path / "x"
    monkeypatch.delenv("MFLAG_MONAI_DEMO_DIR")
    assert demo.default_demo_dir() == Path.home() / ".cache" / "mflag_monai" / "demo"


def test_official_headers(root):
    mimic = root / "mimic-cxr"
    assert _header(mimic / "mimic-cxr-2.0.0-split.csv") == "dicom_id,study_id,subject_id,split"
    assert _header(mimic / "mimic-cxr-2.0.0-chexpert.csv") == "subject_id,study_id," + ",".join(demo.MIMIC_LABELS)
    assert _header(mimic / "mimic-cxr-2.0.0-metadata.csv").startswith("dicom_id,subject_id,study_id,")
    chexpert_header = (
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
        "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
        "Fracture,Support Devices"
    )
    assert _header(root / "chexpert" / "train.csv") == chexpert_header
    assert _header(root / "chexpert" / "valid.csv") == chexpert_header
    assert _header(root / "rsna-pneumonia" / "stage_2_train_labels.csv") == "patientId,x,y,width,height,Target"
    assert _header(root / "rsna-pneumonia" / "stage_2_detailed_class_info.csv") == "patientId,class"
    assert _header(root / "siim-pneumothorax" / "train-rle.csv") == "ImageId, EncodedPixels"


# ----------------------------------------------------------------------------- MIMIC-CXR


def test_mimic_layout_and_reports(root):
    mimic = root / "mimic-cxr"
    meta = _rows(mimic / "mimic-cxr-2.0.0-metadata.csv")
    split = {r["dicom_id"]: r for r in _rows(mimic / "mimic-cxr-2.0.0-split.csv")}
    labels = {r["study_id"]: r for r in _rows(mimic / "mimic-cxr-2.0.0-chexpert.csv")}
    assert len(labels) == N and set(split) == {r["dicom_id"] for r in meta}
    assert {r["split"] for r in split.values()} == {"train", "validate", "test"}
    per_subject = {}
    for r in split.values():
        per_subject.setdefault(r["subject_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in per_subject.values())  # split by subject
    views, sizes, kinds = set(), set(), {"none": 0, "findings": 0, "impression": 0, "both": 0}
    for r in meta:
        subj, study = r["subject_id"], r["study_id"]
        assert len(subj) == 8 and subj[0] == "1" and len(study) == 8 and study[0] == "5"
        assert [len(g) for g in r["dicom_id"].split("-")] == [8] * 5
        study_dir = mimic / "files" / f"p{subj[:2]}" / f"p{subj}"
        assert (study_dir / f"s{study}" / f"{r['dicom_id']}.dcm").is_file()
        assert (study_dir / f"s{study}.txt").is_file()
        views.add(r["ViewPosition"])
        sizes.add((r["Rows"], r["Columns"]))
    assert {"PA", "AP"} <= views and views & {"LL", "LATERAL"}
    assert len(sizes) > 1
    for txt in (mimic / "files").rglob("s*.txt"):
        text = txt.read_text()
        assert text.startswith(" " * 33 + "FINAL REPORT\n EXAMINATION:")
        has_f, has_i = "FINDINGS:" in text, "IMPRESSION:" in text
        kinds["both" if has_f and has_i else "findings" if has_f else "impression" if has_i else "none"] += 1
        if not (has_f or has_i):
            # Report-less studies carry no labels at all.
            assert all(v == "" for k, v in labels[txt.stem[1:]].items() if k in demo.MIMIC_LABELS)
    assert all(v >= 1 for v in kinds.values()), kinds
    assert sum(kinds.values()) == N
    values = {v for r in labels.values() for k, v in r.items() if k in demo.MIMIC_LABELS}
    assert values <= {"1.0", "0.0", "-1.0", ""} and {"1.0", "0.0", ""} <= values


def test_mimic_dicoms(root):
    mimic = root / "mimic-cxr"
    meta = {r["dicom_id"]: r for r in _rows(mimic / "mimic-cxr-2.0.0-metadata.csv")}
    photometrics, modalities, windows = set(), set(), 0
    for path in (mimic / "files").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        row = meta[path.stem]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
        assert (ds.Modality, ds.SOPClassUID) in {
            ("CR", "1.2.840.10008.5.1.4.1.1.1"),
            ("DX", "1.2.840.10008.5.1.4.1.1.1.1"),
        }
        bits = (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel)
        assert bits == (16, 12, 11, 0, 1)
        assert ds.ViewPosition == row["ViewPosition"] and ds.PatientID == row["subject_id"]
        assert (str(ds.Rows), str(ds.Columns)) == (row["Rows"], row["Columns"])
        assert ds.BodyPartExamined == "CHEST" and ds.PatientSex in ("M", "F") and ds.PatientAge.endswith("Y")
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert uid.startswith("2.25.") and len(uid) <= 64
        assert float(ds.RescaleSlope) in (1.0, 2.0) and float(ds.RescaleIntercept) in (0.0, -1024.0)
        assert len(ds.PixelSpacing) == 2 and len(ds.ImagerPixelSpacing) == 2
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.shape == (ds.Rows, ds.Columns) and pixels.max() <= 4095
        modality = pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        if "WindowCenter" in ds:
            windows += 1
            lo = float(ds.WindowCenter) - float(ds.WindowWidth) / 2
            hi = float(ds.WindowCenter) + float(ds.WindowWidth) / 2
            inside = ((modality >= lo) & (modality <= hi)).mean()
            assert inside > 0.97 and float(ds.WindowWidth) > 0.5 * (modality.max() - modality.min())
        photometrics.add(ds.PhotometricInterpretation)
        modalities.add(ds.Modality)
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"} and modalities == {"CR", "DX"}
    assert windows > 0


def test_mimic_pixels_match_phantom_and_labels(root):
    """Re-render each frontal phantom: the file (MONOCHROME1 inverted) is that image, and the labels hold."""
    mimic = root / "mimic-cxr"
    labels = {int(r["study_id"]): r for r in _rows(mimic / "mimic-cxr-2.0.0-chexpert.csv")}
    checked = {"MONOCHROME1": 0, "MONOCHROME2": 0}
    for study in plan_mimic(SEED, N, SIZE):
        img = study.images[0]
        phantom = render_frontal(img.seed, img.rows, img.cols, study.case)
        subject_dir = mimic / "files" / f"p{str(study.subject_id)[:2]}" / f"p{study.subject_id}"
        path = subject_dir / f"s{study.study_id}" / f"{img.dicom_id}.dcm"
        ds = pydicom.dcmread(path)
        viewed = _as_viewed(ds)
        assert np.corrcoef(viewed.ravel(), phantom.image.ravel())[0, 1] > 0.999
        # Inverting MONOCHROME1 restores the anatomy's contrast: dark lungs, bright heart.
        lungs, heart = phantom.lung_mask > 0, phantom.heart_mask > 0
        assert viewed[lungs].mean() < viewed[heart].mean()
        raw = ds.pixel_array.astype(float)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            assert raw[lungs].mean() > raw[heart].mean()
        checked[ds.PhotometricInterpretation] += 1

        row = labels[study.study_id]
        f = phantom.findings
        if row["Cardiomegaly"] == "1.0":
            assert f.cardiomegaly and phantom.ctr > 0.5
        if row["Cardiomegaly"] == "0.0":
            assert not f.cardiomegaly and phantom.ctr < 0.5
        for name, present in (("Pleural Effusion", f.effusion), ("Pneumothorax", f.pneumothorax),
                              ("Support Devices", f.support_devices)):  # fmt: skip
            if row[name] in ("1.0", "-1.0"):
                assert present, (name, study.study_id)
            if row[name] == "0.0":
                assert not present, (name, study.study_id)
        if row["Consolidation"] in ("1.0", "-1.0") or row["Lung Opacity"] in ("1.0", "-1.0"):
            assert f.consolidations
        if row["Lung Lesion"] == "1.0":
            assert f.nodules
        if row["No Finding"] == "1.0":
            assert not (f.cardiomegaly or f.effusion or f.pneumothorax or f.consolidations or f.nodules)
    assert min(checked.values()) > 0


# ----------------------------------------------------------------------------- CheXpert


def test_chexpert(root):
    chex = root / "chexpert"
    train, valid = _rows(chex / "train.csv"), _rows(chex / "valid.csv")
    assert len(train) == N // 2 and len(valid) >= 8
    for r in train + valid:
        assert r["Path"].startswith("CheXpert-v1.0-small/train/" if r in train else "CheXpert-v1.0-small/valid/")
        with Image.open(chex / r["Path"]) as im:
            assert im.format == "JPEG" and im.mode == "L"
        assert r["Frontal/Lateral"] in ("Frontal", "Lateral")
        assert r["AP/PA"] in (("AP", "PA") if r["Frontal/Lateral"] == "Frontal" else ("",))
        assert r["Sex"] in ("Female", "Male") and 18 <= int(r["Age"]) <= 90
    values = lambda rows: {r[k] for r in rows for k in demo.CHEXPERT_LABELS}  # noqa: E731
    assert values(valid) <= {"0.0", "1.0"}
    assert values(train) <= {"0.0", "1.0", "-1.0", ""} and "" in values(train)


# ----------------------------------------------------------------------------- RSNA


def test_rsna_boxes_are_bright_opacities(root):
    rsna = root / "rsna-pneumonia"
    label_rows, class_rows = _rows(rsna / "stage_2_train_labels.csv"), _rows(rsna / "stage_2_detailed_class_info.csv")
    assert [r["patientId"] for r in label_rows] == [r["patientId"] for r in class_rows]
    boxes: dict[str, list] = {}
    for lab, cls in zip(label_rows, class_rows):
        boxes.setdefault(lab["patientId"], [])
        if lab["Target"] == "1":
            assert cls["class"] == "Lung Opacity"
            boxes[lab["patientId"]].append(tuple(int(float(lab[k])) for k in ("x", "y", "width", "height")))
        else:
            assert lab["Target"] == "0" and lab["x"] == lab["width"] == "" and cls["class"] != "Lung Opacity"
    assert {r["class"] for r in class_rows} == {"Lung Opacity", "Normal", "No Lung Opacity / Not Normal"}
    assert any(len(b) == 2 for b in boxes.values())
    assert 0.25 <= np.mean([bool(b) for b in boxes.values()]) <= 0.45

    plan = {item.image_id: item for item in plan_rsna(SEED, demo.DEMO_COUNTS["rsna-pneumonia"](N), SIZE)}
    assert set(plan) == set(boxes)
    for pid, pid_boxes in boxes.items():
        ds = pydicom.dcmread(rsna / "stage_2_train_images" / f"{pid}.dcm")
        header = (ds.PatientID, ds.Rows, ds.Columns, ds.BitsStored, ds.PhotometricInterpretation)
        assert header == (pid, SIZE, SIZE, 8, "MONOCHROME2")
        assert "RescaleSlope" not in ds
        phantom = render_frontal(plan[pid].seed, SIZE, SIZE, plan[pid].case)
        assert sorted(phantom.boxes) == sorted(pid_boxes)
        image, lungs = ds.pixel_array.astype(float), phantom.lung_mask > 0
        for x, y, w, h in pid_boxes:
            inside = np.zeros_like(lungs)
            inside[y : y + h, x : x + w] = True
            assert image[inside].mean() > image[lungs & ~inside].mean() + 4  # 8-bit grey levels; faint ones too


# ----------------------------------------------------------------------------- SIIM


def test_siim_rle_matches_dark_pneumothorax(root):
    siim = root / "siim-pneumothorax"
    lines = (siim / "train-rle.csv").read_text().splitlines()
    rles: dict[str, list[str]] = {}
    for line in lines[1:]:
        image_id, rle = line.split(", ", 1)
        assert rle == "-1" or rle[0].isdigit()
        rles.setdefault(image_id, []).append(rle)
    assert any(len(v) == 2 for v in rles.values())
    assert 0.25 <= np.mean([v != ["-1"] for v in rles.values()]) <= 0.45
    paths = {p.stem: p for p in (siim / "dicom-images-train").rglob("*.dcm")}
    assert set(paths) == set(rles)
    plan = {item.image_id: item for item in plan_siim(SEED, demo.DEMO_COUNTS["siim-pneumothorax"](N), SIZE)}
    for image_id, rows in rles.items():
        path = paths[image_id]
        ds = pydicom.dcmread(path)
        assert path.parent.name == ds.SeriesInstanceUID and path.parent.parent.name == ds.StudyInstanceUID
        assert ds.SOPInstanceUID == image_id and ds.BitsStored == 8 and (ds.Rows, ds.Columns) == (SIZE, SIZE)
        mask = rle_decode_union(rows, SIZE, SIZE)
        phantom = render_frontal(plan[image_id].seed, SIZE, SIZE, plan[image_id].case)
        np.testing.assert_array_equal(mask, phantom.pneumothorax_mask)
        if mask.any():
            image, ptx = ds.pixel_array.astype(float), mask.astype(bool)
            rest = (phantom.lung_mask > 0) & ~ptx
            assert image[ptx].mean() + 8 < image[rest].mean()


def test_script(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path / "cli"), "--num-studies", "12", "--seed", "1", "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "cli") in out and "siim-pneumothorax:" in out and "mimic-cxr:" in out


def test_counts_resize_the_derived_data_sets(tmp_path):
    root = demo.generate_demo_data(tmp_path / "d", num_studies=10, image_size=64, progress=False,
                                   counts={"chexpert-valid": 12, "siim-pneumothorax": 9})  # fmt: skip
    stamp = json.loads((root / "demo.json").read_text())
    assert stamp["parameters"]["counts"] == {"chexpert-valid": 12, "siim-pneumothorax": 9}
    assert stamp["summary"]["chexpert"]["valid images"] == 12
    assert stamp["summary"]["siim-pneumothorax"]["images"] == 9
    assert stamp["summary"]["rsna-pneumonia"]["images"] == demo.DEMO_COUNTS["rsna-pneumonia"](10)
    with pytest.raises(ValueError, match="unknown keys"):
        demo.generate_demo_data(tmp_path / "e", num_studies=10, counts={"ct": 3})
