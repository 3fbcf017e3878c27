"""Several datasets at once: ``dataset_dir`` as a list of folders and datalists, merged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.data import list_data_collate
from test_mimic_prepare import make_mimic

from mflag_monai.data import get_preparer, merge_datalists, resolve_datalist
from mflag_monai.data.datalist import detect_dataset
from mflag_monai.data.demo import write_chexpert_plus_demo, write_iu_xray_demo
from mflag_monai.utils.io import atomic_write_json

SPLITS = ("training", "validation", "test")


def images(splits: dict[str, list[dict]]) -> list[str]:
    return [e["image"] for name in SPLITS for e in splits.get(name, [])]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    return {
        "iu-xray": write_iu_xray_demo(base / "iu", num_reports=10, image_size=64, images=("png",)),
        "iu-xray-csv": write_iu_xray_demo(base / "iu_csv", num_reports=10, image_size=64, layout="csv"),
        "chexpert-plus": write_chexpert_plus_demo(base / "cp", num_patients=6, image_size=64),
        "mimic-cxr": make_mimic(base / "mimic"),
    }


def test_folders_are_recognised(roots: dict[str, Path], tmp_path: Path) -> None:
    assert {name: detect_dataset(root) for name, root in roots.items()} == {
        "iu-xray": "iu-xray", "iu-xray-csv": "iu-xray", "chexpert-plus": "chexpert-plus", "mimic-cxr": "mimic-cxr",
    }  # fmt: skip
    assert detect_dataset(tmp_path) is None
    # one folder of another image–report collection, with the pre-training bundle's dataset="mimic-cxr"
    assert images(resolve_datalist(roots["iu-xray"], dataset="mimic-cxr")) == images(
        get_preparer("iu-xray")(roots["iu-xray"]).datalist
    )


def test_list_of_folders_and_datalists(roots: dict[str, Path], tmp_path: Path) -> None:
    cp_json = tmp_path / "chexpert-plus.json"
    atomic_write_json(get_preparer("chexpert-plus")(roots["chexpert-plus"]).to_json(), cp_json)
    out = tmp_path / "models" / "datalist_pretrain.json"
    out.parent.mkdir()
    sources = [str(roots["iu-xray"]), str(roots["mimic-cxr"]), str(cp_json)]
    merged = resolve_datalist(sources, datalist_file=out, report_key="report")
    every = [e for name in SPLITS for e in merged[name]]
    by_source = {s: [e for e in every if e["source"] == s] for s in ("iu-xray", "mimic-cxr", "chexpert-plus")}
    assert all(by_source.values()) and len(every) == sum(map(len, by_source.values()))
    expected = get_preparer("iu-xray")(roots["iu-xray"]).datalist
    assert [e["image"] for e in merged["training"] if e["source"] == "iu-xray"] == images(
        {"training": expected["training"]}
    )
    assert len({frozenset(e) for e in every}) == 1  # the same keys everywhere ...
    batch = list_data_collate([by_source["iu-xray"][0], by_source["mimic-cxr"][0], by_source["chexpert-plus"][0]])
    assert batch["source"] == ["iu-xray", "mimic-cxr", "chexpert-plus"]  # ... so that mixed batches collate
    assert by_source["mimic-cxr"][0]["mesh"] == "" and by_source["iu-xray"][0]["dicom_id"] == ""
    # each folder's datalist is cached beside datalist_file and reused while its inputs are unchanged
    cached = sorted(p.name for p in out.parent.glob("datalist_pretrain.*.json"))
    assert len(cached) == 2 and all(json.loads((out.parent / c).read_text())["source"] for c in cached)
    stamps = [(out.parent / c).stat().st_mtime_ns for c in cached]
    # also as the text the command line gives, and in another order: the first listing of an image wins
    again = resolve_datalist(str([str(cp_json), *sources[:2]]), datalist_file=out)
    assert [(out.parent / c).stat().st_mtime_ns for c in cached] == stamps
    assert sorted(images(again)) == sorted(images(merged))


def test_no_duplicate_images(roots: dict[str, Path], tmp_path: Path) -> None:
    iu = str(roots["iu-xray"])
    prepared = get_preparer("iu-xray")(iu)
    atomic_write_json(prepared.to_json(), tmp_path / "iu.json")
    merged = resolve_datalist([iu, str(tmp_path / "iu.json"), iu])
    assert sorted(images(merged)) == sorted(images(prepared.datalist))
    # the same images in the official layout and in the redistribution: the same image ids, kept once
    both = resolve_datalist([iu, str(roots["iu-xray-csv"])])
    ids = [e["image_id"] for name in SPLITS for e in both[name]]
    assert len(ids) == len(set(ids)) and set(ids) >= {e["image_id"] for e in prepared.datalist["training"]}


def test_merge_keys_and_notes() -> None:
    merged, notes = merge_datalists([
        ("a", {"training": [{"image": "/x/1.png", "report": "r", "label": [1.0], "mesh": "m"}]}),
        ("b", {"training": [{"image": "/x/2.png", "report": "s", "source": "own"}, {"image": "/x/1.png", "report": "t"}],
               "test": []}),
    ])  # fmt: skip
    assert merged["training"] == [
        {"image": "/x/1.png", "report": "r", "mesh": "m", "source": "a"},
        {"image": "/x/2.png", "report": "s", "source": "own", "mesh": ""},
    ]
    assert "'label'" in notes and "removed" in notes and "1 images already listed" in notes


def test_bad_lists(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a list"):
        resolve_datalist("[/data/a, /data/b]")
    with pytest.raises(ValueError, match="empty list"):
        resolve_datalist([])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_datalist([str(tmp_path / "nowhere")])
