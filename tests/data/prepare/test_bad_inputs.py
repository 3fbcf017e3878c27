"""A corpus of bad inputs to ``python -m mflag_monai.data`` and to the datalist check, each with its asserted outcome:
a correct result, or one ``error: <what> (<file>)`` line with exit code 2 (no traceback unless ``--debug``), or, for a
datalist, one line per bad entry naming the split, the entry and the problem."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mflag_monai.data import DatalistError, check_datalist, load_datalist, resolve_datalist
from mflag_monai.data.__main__ import main
from mflag_monai.data.prepare.check import DatalistSchema
from mflag_monai.utils.errors import InputError


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse errors
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str, *words: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err, err
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


# ------------------------------------------------------------------ prepare: folders, tables, options


@pytest.fixture()
def chexpert(small_demo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "chexpert"
    shutil.copytree(small_demo / "chexpert", root)
    return root


def test_wrong_folder(tmp_path: Path, capsys) -> None:
    code, _, err = run(
        ["prepare", "chexpert", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.json")], capsys
    )
    assert code == 2
    one_error_line(err, "dataset folder not found", str(tmp_path / "nowhere"))


def test_root_that_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "file.csv").write_text("a,b\n")
    code, _, err = run(["prepare", "nih-cxr14", "--root", str(tmp_path / "file.csv")], capsys)
    assert code == 2
    one_error_line(err, "not a file", "file.csv")


def test_missing_column(chexpert: Path, tmp_path: Path, capsys) -> None:
    csv = chexpert / "train.csv"
    csv.write_text(csv.read_text().replace("Frontal/Lateral", "View", 1))
    code, _, err = run(["prepare", "chexpert", "--root", str(chexpert), "--out", str(tmp_path / "x.json")], capsys)
    assert code == 2
    one_error_line(err, "missing columns", "Frontal/Lateral", "train.csv")
    assert not (tmp_path / "x.json").exists()


def test_empty_csv(chexpert: Path, tmp_path: Path, capsys) -> None:
    (chexpert / "train.csv").write_text("")
    code, _, err = run(["prepare", "chexpert", "--root", str(chexpert), "--out", str(tmp_path / "x.json")], capsys)
    assert code == 2
    one_error_line(err, "train.csv")


def test_header_only_csv_writes_nothing(chexpert: Path, tmp_path: Path, capsys) -> None:
    csv = chexpert / "train.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    out = tmp_path / "x.json"
    code, _, err = run(["prepare", "chexpert", "--root", str(chexpert), "--out", str(out)], capsys)
    assert code == 2
    one_error_line(err, "no training entries", str(chexpert))
    assert not out.exists()


def test_fraction_zero(chexpert: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(["prepare", "chexpert", "--root", str(chexpert), "--fraction", "0"], capsys)
    assert code == 2
    one_error_line(err, "fraction")


def test_unknown_task(small_demo: Path, capsys) -> None:
    code, _, err = run(
        ["prepare", "rsna-pneumonia", "--root", str(small_demo / "rsna-pneumonia"), "--task", "foo"], capsys
    )
    assert code == 2
    one_error_line(err, "foo")


@pytest.mark.parametrize("dataset", ["chexpert", "siim-pneumothorax", "mimic-cxr", "nih-cxr14"])
def test_task_refused_where_the_preparer_has_none(dataset: str, small_demo: Path, capsys) -> None:
    code, _, err = run(["prepare", dataset, "--root", str(small_demo), "--task", "segmentation"], capsys)
    assert code == 2
    one_error_line(err, f"prepare {dataset} has no option --task")


def test_fraction_refused_where_the_preparer_has_none(small_demo: Path, capsys) -> None:
    code, _, err = run(["prepare", "mimic-cxr", "--root", str(small_demo / "mimic-cxr"), "--fraction", "0.1"], capsys)
    assert code == 2
    one_error_line(err, "prepare mimic-cxr has no option --fraction")


@pytest.mark.parametrize(
    ("dataset", "options"),
    [
        ("siim-pneumothorax", ["--masks-dir", "--balance", "--no-balance"]),
        ("chexpert", ["--val-fraction"]),
        ("rsna-pneumonia", ["--task", "--masks-dir"]),
        ("covidx", ["--val-fraction", "--train-file"]),
        ("mimic-cxr", ["--reports-root"]),
    ],
)
def test_prepare_dataset_help_shows_its_options(dataset: str, options: list[str], capsys) -> None:
    code, out, _ = run(["prepare", dataset, "--help"], capsys)
    assert code == 0
    for option in options:
        assert option in out
    if dataset == "chexpert":
        assert "--task" not in out and "--masks-dir" not in out


def test_val_fraction_balance_and_masks_dir_from_the_command_line(small_demo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.json"
    assert (
        run(
            ["prepare", "chexpert", "--root", str(small_demo / "chexpert"), "--out", str(out), "--val-fraction", "0.5"],
            capsys,
        )[0]
        == 0
    )
    half = json.loads(out.read_text())
    assert (
        run(
            ["prepare", "chexpert", "--root", str(small_demo / "chexpert"), "--out", str(out), "--val_fraction", "0"],
            capsys,
        )[0]
        == 0
    )
    none = json.loads(out.read_text())
    assert len(none["validation"]) == 0 < len(half["validation"])
    masks = tmp_path / "my_masks"
    siim = tmp_path / "s.json"
    argv = ["prepare", "siim-pneumothorax", "--root", str(small_demo / "siim-pneumothorax"), "--out", str(siim)]
    assert run([*argv, "--masks-dir", str(masks), "--no-balance"], capsys)[0] == 0
    entries = json.loads(siim.read_text())
    assert all(Path(e["label"]).parent == masks for e in entries["training"])
    assert entries["summary"].get("training negatives dropped to balance 1:1", 0) == 0


def test_symlinked_image_folder_is_followed(small_demo: Path, tmp_path: Path, capsys) -> None:
    source = small_demo / "siim-pneumothorax"
    root = tmp_path / "siim"
    root.mkdir()
    shutil.copy(source / "train-rle.csv", root / "train-rle.csv")
    (root / "dicom-images-train").symlink_to(source / "dicom-images-train", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link back up the tree is visited once
    linked, direct = tmp_path / "linked.json", tmp_path / "direct.json"
    assert run(["prepare", "siim-pneumothorax", "--root", str(root), "--out", str(linked)], capsys)[0] == 0
    assert run(["prepare", "siim-pneumothorax", "--root", str(source), "--out", str(direct)], capsys)[0] == 0
    count = {k: len(v) for k, v in json.loads(linked.read_text()).items() if isinstance(v, list)}
    assert count == {k: len(v) for k, v in json.loads(direct.read_text()).items() if isinstance(v, list)}
    assert count["training"] > 0


@pytest.mark.slow
def test_the_real_command_line_prints_one_line_and_debug_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    cmd = [sys.executable, "-m", "mflag_monai.data", "check", str(bad)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = res.stderr.strip()
    assert res.returncode == 2 and line.startswith("error: not valid JSON: ") and line.endswith(f"({bad})"), line
    assert "\n" not in line
    res = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "Traceback" in res.stderr and res.stderr.strip().endswith(f"({bad})")


# ------------------------------------------------------------------ check: datalist files that are not datalists


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "not a list"),
        ('"training"', "not a str"),
        ('{"training": {"a": 1}}', "split 'training' is a dict"),
        ("{}", "no splits"),
        (b"\xff\xfe\x00binary", "not a text file"),
    ],
    ids=["invalid-json", "top-level-list", "top-level-string", "split-not-list", "empty-object", "binary"],
)
def test_check_of_files_that_are_not_datalists(content: str | bytes, words: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "dl.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = run(["check", str(path)], capsys)
    assert code == 2
    one_error_line(err, words, str(path))


def test_check_of_a_missing_datalist(tmp_path: Path, capsys) -> None:
    code, _, err = run(["check", str(tmp_path / "none.json")], capsys)
    assert code == 2
    one_error_line(err, "datalist not found", "none.json")


# ------------------------------------------------------------------ check: bad entries, against the task


@pytest.fixture()
def png(tmp_path: Path) -> str:
    path = tmp_path / "x.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)).save(path)
    return str(path)


def _pngs(tmp_path: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((16, 16), 10 * i, np.uint8)).save(path)
        paths.append(str(path))
    return paths


PRETRAIN_DEFECTS = {
    "entry-is-a-string": ("x.png", "entry is a text, not an object"),
    "entry-is-a-list": (["x.png"], "entry is a list, not an object"),
    "no-image": ({"report": "ok", "drop": "image"}, "no 'image' entry"),
    "image-is-a-number": ({"image": 3, "report": "ok"}, "'image' is a number, not a file path"),
    "report-null": ({"report": None}, "report is null, not text"),
    "report-number": ({"report": 1.5}, "report is number, not text"),
    "report-list": ({"report": ["a"]}, "report is list, not text"),
    "report-empty": ({"report": "   "}, "empty report"),
    "no-report": ({"report": "ok", "drop": "report"}, "report is null, not text"),
    "extra-key": ({"report": "ok", "view": "PA"}, "extra key(s) ['view']"),
    "extra-null": ({"report": "ok", "study_id": None}, "null value in 'study_id'"),
    "type-differs": ({"report": "ok", "study_id": 5}, "'study_id' is number, other entries hold text"),
    "missing-file": ({"report": "ok", "image": "/nonexistent/a.png"}, "file not found"),
}


@pytest.mark.parametrize("defect", sorted(PRETRAIN_DEFECTS))
def test_pretrain_datalist_defects(defect: str, tmp_path: Path) -> None:
    images = _pngs(tmp_path, 4)
    good = [{"image": p, "report": f"report {i}", "study_id": str(i)} for i, p in enumerate(images)]
    change, words = PRETRAIN_DEFECTS[defect]
    if isinstance(change, dict):
        bad = {**good[1], **{k: v for k, v in change.items() if k != "drop"}}
        if "drop" in change:
            bad.pop(change["drop"])
    else:
        bad = change
    datalist = {"training": [good[0], bad, good[2], good[3]]}
    report = check_datalist(datalist, schema="pretrain")
    lines = [str(p) for p in report.errors]
    assert len(lines) == 1 and lines[0].startswith("error: training[1]") and words in lines[0], report.format()
    assert report.clean["training"] == [good[0], good[2], good[3]]
    # a bundle start refuses it in one line naming the entry, or trains without it when told to
    path = tmp_path / "dl.json"
    path.write_text(json.dumps(datalist))
    with pytest.raises(DatalistError) as caught:
        resolve_datalist(str(path), schema="pretrain")
    first = str(caught.value).splitlines()[0]
    assert first.startswith("training[1]") and words in first and str(path) in first
    assert resolve_datalist(str(path), schema="pretrain", skip_bad_entries=True)["training"] == report.clean["training"]


CLASSIFICATION_DEFECTS = {
    "too-short": ([1.0, 0.0, 0.0, 0.0], "label has 4 values; the task has 5 labels"),
    "too-long": ([0.0] * 6, "label has 6 values; the task has 5 labels"),
    "inf": ([float("inf"), 0.0, 0.0, 0.0, 0.0], "label value inf is infinite"),
    "nan": ([float("nan"), 0.0, 0.0, 0.0, 0.0], "label value NaN is not a number"),
    "above-one": ([2.0, 0.0, 0.0, 0.0, 0.0], "label value 2.0 is outside [0, 1]"),
    "uncertain": ([-1.0, 0.0, 0.0, 0.0, 0.0], "label value -1.0 is outside [0, 1]"),
    "text-value": (["1", 0.0, 0.0, 0.0, 0.0], "label value '1' is not a number"),
    "bool-value": ([True, 0.0, 0.0, 0.0, 0.0], "label value True is not a number"),
    "scalar": (1, "is a single number; the task wants a list of 5 values"),
    "text": ("Edema", "label 'Edema' is text"),
    "null": (None, "label None is not a number"),
    "empty": ([], "label has 0 values"),
}


@pytest.mark.parametrize("defect", sorted(CLASSIFICATION_DEFECTS))
def test_classification_datalist_defects(defect: str, tmp_path: Path) -> None:
    images = _pngs(tmp_path, 3)
    good = [{"image": p, "label": [0.0, 1.0, 0.0, 0.0, 1.0]} for p in images]
    label, words = CLASSIFICATION_DEFECTS[defect]
    datalist = {"training": [good[0], {**good[1], "label": label}, good[2]]}
    report = check_datalist(datalist, schema=DatalistSchema.for_task("classification", dataset="chexpert"))
    lines = [str(p) for p in report.errors]
    assert lines and all(line.startswith("error: training[1]") for line in lines), report.format()
    assert any(words in line for line in lines), report.format()
    assert report.clean["training"] == [good[0], good[2]]


@pytest.mark.parametrize(
    ("label", "words"),
    [(3, "class index 3 is out of range; the task has 3 classes (0..2)"), (-1, "class index -1 is negative"),
     (1.5, "class index 1.5 is not a whole number"),
     ([0, 1], "label is a list of 2 values; a multi-class task wants one class index (0..2)"),
     ([0, 0, 1], "label is a list of 3 values; a multi-class task wants one class index (0..2)")],
)  # fmt: skip
def test_multi_class_label_defects(label: object, words: str, tmp_path: Path) -> None:
    images = _pngs(tmp_path, 2)
    datalist = {"training": [{"image": images[0], "label": 2}, {"image": images[1], "label": label}]}
    report = check_datalist(datalist, schema=DatalistSchema.for_task("classification", dataset="covidx"))
    assert [str(p) for p in report.errors] == [f"error: training[1] {images[1]}: {words}"]


@pytest.mark.parametrize(
    ("change", "words"),
    [({"boxes": [[10, 10, 5, 20]]}, "has no area"), ({"boxes": [[5, 2, 5, 9]]}, "has no area (x2 <= x1"),
     ({"boxes": [[1, 2, 17, 9]]}, "reaches outside the 16x16"), ({"boxes": [[-1, 2, 8, 9]]}, "reaches outside"),
     ({"labels": [1]}, "box label 1 is out of range; the task has 1 box class(es)"),
({"boxes": [[1, 2, 3]]}, "not [x1, y1, x2, y2]"),
     ({"boxes": [[1, 2, float("inf"), 4]]}, "coordinate inf is infinite"), ({"labels": [0, 0]}, "one class index per box"),
     ({"labels": [-1]}, "box label -1 is not a class index"), ({"boxes": None}, "not a list of [x1, y1, x2, y2] boxes")],
)  # fmt: skip
def test_detection_datalist_defects(change: dict, words: str, tmp_path: Path) -> None:
    images = _pngs(tmp_path, 2)
    good = {"image": images[0], "boxes": [[1.0, 2.0, 8.0, 9.0]], "labels": [0]}
    datalist = {"training": [good, {**good, "image": images[1], **change}]}
    report = check_datalist(datalist, schema="detection")
    assert report.errors and all(str(p).startswith("error: training[1]") for p in report.errors), report.format()
    assert any(words in str(p) for p in report.errors), report.format()


def test_segmentation_label_must_be_a_mask_file(tmp_path: Path) -> None:
    images = _pngs(tmp_path, 3)
    datalist = {"training": [{"image": images[0], "label": images[1]}, {"image": images[1], "label": [0.0]},
                             {"image": images[2], "label": str(tmp_path / "no_mask.png")}]}  # fmt: skip
    report = check_datalist(datalist, schema="segmentation")
    text = report.format()
    assert "training[1]" in text and "not a mask file" in text and "label file not found" in text
    assert report.clean["training"] == [datalist["training"][0]]


@pytest.mark.parametrize(
    ("datalist", "words"),
    [({"validation": []}, "the 'training' split is missing"), ({"training": []}, "the 'training' split is empty")],
)
def test_missing_training_split_stops_even_when_skipping(datalist: dict, words: str, tmp_path: Path) -> None:
    path = tmp_path / "dl.json"
    path.write_text(json.dumps(datalist))
    for skip in (False, True):
        with pytest.raises(DatalistError, match=words):
            resolve_datalist(str(path), schema="pretrain", skip_bad_entries=skip)


def test_check_cli_infers_the_task_and_exits_one_on_bad_entries(tmp_path: Path, capsys) -> None:
    images = _pngs(tmp_path, 2)
    path = tmp_path / "dl.json"
    path.write_text(
        json.dumps({"training": [{"image": images[0], "report": "ok"}, {"image": images[1], "report": None}]})
    )
    code, out, _ = run(["check", str(path)], capsys)
    assert code == 1 and "for the task 'pretrain'" in out and "training[1]" in out and "report is null" in out
    path.write_text(
        json.dumps({"training": [{"image": images[0], "label": [0.0] * 5}, {"image": images[1], "label": [0.0] * 4}]})
    )
    code, out, _ = run(["check", str(path), "--dataset", "chexpert"], capsys)
    assert code == 1 and "label has 4 values; the task has 5 labels" in out
    code, out, _ = run(["check", str(path), "--task", "classification", "--num-classes", "4"], capsys)
    assert code == 1 and "training[0]" in out and "the task has 4 labels" in out


def test_a_mask_of_another_size_than_its_image_is_refused(tmp_path: Path) -> None:
    image, mask = tmp_path / "image.png", tmp_path / "mask.png"
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(image)  # 64 wide, 32 high
    Image.fromarray(np.zeros((64, 32), np.uint8)).save(mask)  # the transpose: same pixel count
    report = check_datalist({"training": [{"image": str(image), "label": str(mask)}]}, schema="segmentation")
    assert [str(p) for p in report.errors] == [
        f"error: training[0] {mask}: mask is 32x64 (width x height), its image 64x32: a mask must have its image's size"
    ]


def test_a_jpeg_mask_is_refused(tmp_path: Path) -> None:
    image, mask = tmp_path / "image.png", tmp_path / "mask.jpg"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(image)
    square = np.zeros((32, 32), np.uint8)
    square[8:20, 8:20] = 255
    Image.fromarray(square).save(mask, quality=75)
    report = check_datalist({"training": [{"image": str(image), "label": str(mask)}]}, schema="segmentation")
    assert len(report.errors) == 1 and "mask is lossy-compressed (JPEG)" in str(report.errors[0])


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u00a0 \u2003", "\ufeff\u200d\n"], ids=["zero-width", "nbsp", "bom"])
def test_a_report_of_invisible_characters_is_empty(text: str, tmp_path: Path) -> None:
    images = _pngs(tmp_path, 2)
    datalist = {"training": [{"image": images[0], "report": "Clear lungs."}, {"image": images[1], "report": text}]}
    report = check_datalist(datalist, schema="pretrain")
    assert [str(p) for p in report.errors] == [
        f"error: training[1] {images[1]}: empty report (only whitespace or invisible characters)"
    ]


def test_a_datalist_with_a_key_twice_is_refused(tmp_path: Path) -> None:
    images = _pngs(tmp_path, 5)
    first = ", ".join(json.dumps({"image": p}) for p in images[:3])
    path = tmp_path / "twice.json"
    path.write_text(f'{{"training": [{first}], "training": [{json.dumps({"image": images[3]})}]}}')
    with pytest.raises(InputError, match="key 'training' appears twice") as caught:
        load_datalist(path)
    assert str(path) in str(caught.value)


def test_relative_paths_resolve_against_the_datalists_folder(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "set"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "images" / "a.png")
    (folder / "list.json").write_text(json.dumps({"training": [{"image": "images/a.png", "label": "images/a.png"}]}))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "images").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(elsewhere / "images" / "a.png")  # a decoy, same name
    monkeypatch.chdir(elsewhere)
    entry = load_datalist(folder / "list.json")["training"][0]
    assert entry == {"image": str(folder / "images" / "a.png"), "label": str(folder / "images" / "a.png")}


def test_a_deeply_nested_datalist_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputError, match="nested too deeply") as caught:
        load_datalist(path)
    assert "\n" not in str(caught.value)
