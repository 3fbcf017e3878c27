"""mflag_monai.data.prepare.tables and the preparers' table defects: repeated columns, byte-order marks, other
separators and missing columns end in one line naming the file; repeated rows and unusable boxes are dropped and
counted in the summary, never written or trained on silently."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.dicom import write_dicom
from mflag_monai.data.prepare.mimic import prepare_mimic_cxr
from mflag_monai.data.prepare.rsna import prepare_rsna
from mflag_monai.data.prepare.tables import read_csv_rows
from mflag_monai.utils.errors import InputError


def test_a_repeated_column_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("dicom_id,split,split\na,train,test\n")
    with pytest.raises(InputError, match="column 'split' appears twice") as caught:
        read_csv_rows(path, ("dicom_id", "split"))
    assert str(path) in str(caught.value)


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffdicom_id,split\na,train\n".encode())
    assert read_csv_rows(path, ("dicom_id", "split")) == [{"dicom_id": "a", "split": "train"}]


def test_semicolons_are_named_as_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("dicom_id;split\na;train\n")
    with pytest.raises(InputError, match="separated by semicolons, not commas") as caught:
        read_csv_rows(path, ("dicom_id", "split"))
    assert str(path) in str(caught.value)


def test_a_missing_column_shows_the_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("dicom,split\n")
    with pytest.raises(InputError, match=r"missing columns \['dicom_id'\] \(its header: dicom, split\)"):
        read_csv_rows(path, ("dicom_id", "split"))


def test_gzipped_tables_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("dicom_id,split\na,train\nb\n")
    assert read_csv_rows(path, ("dicom_id",)) == [{"dicom_id": "a", "split": "train"}, {"dicom_id": "b", "split": ""}]


def test_mimic_metadata_listed_twice_gives_each_image_once(small_demo: Path, tmp_path: Path) -> None:
    source = small_demo / "mimic-cxr"
    root = tmp_path / "mimic"
    root.mkdir()
    (root / "files").symlink_to(source / "files")
    for name in ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-split.csv"):
        shutil.copy(source / name, root / name)
    reference = prepare_mimic_cxr(root)
    lines = (root / "mimic-cxr-2.0.0-metadata.csv").read_text().splitlines()
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text("\n".join([*lines, *lines[1:4]]) + "\n")
    doubled = prepare_mimic_cxr(root)
    images = [e["image"] for split in doubled.datalist.values() for e in split]
    assert len(images) == len(set(images)) == sum(len(v) for v in reference.datalist.values())
    assert doubled.summary["dropped: dicom_id listed twice in the metadata"] == 3


def make_rsna(root: Path, lines: list[str], patients: list[str]) -> Path:
    (root / "stage_2_train_images").mkdir(parents=True)
    for pid in patients:
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", np.full((10, 8), 50, np.uint16))
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n" + "\n".join(lines) + "\n")
    return root


def test_rsna_boxes_without_area_and_positives_without_a_box(tmp_path: Path) -> None:
    lines = ["p1,2,1,-9,4,1", "p2,1,1,3,3,1", "p3,,,,,1", "p4,,,,,0"]  # p1: its only box is negative
    root = make_rsna(tmp_path / "rsna", lines, ["p1", "p2", "p3", "p4"])
    prepared = prepare_rsna(root, out=tmp_path / "o" / "rsna.json", task="detection", seed=0)
    entries = {e["patient_id"]: e for split in prepared.datalist.values() for e in split}
    assert sorted(entries) == ["p2", "p4"]  # p1 and p3 would otherwise train as negatives
    assert all(x2 > x1 and y2 > y1 for e in entries.values() for x1, y1, x2, y2 in e["boxes"])
    assert prepared.summary["dropped boxes: width or height not a positive number"] == 1
    assert prepared.summary["dropped: positive (Target 1) without a usable box"] == 2
    classification = prepare_rsna(root, out=tmp_path / "c" / "rsna.json", task="classification", seed=0)
    kept = {e["patient_id"]: e["label"] for split in classification.datalist.values() for e in split}
    assert kept["p1"] == [1] and kept["p3"] == [1]  # the image-level label still holds
