"""The MONAI Label app (scripts/monailabel_app) over HTTP: a real server on 127.0.0.1, demo studies, tiny trained models.

Segmentation answers a mask of exactly the input's rows x columns (a non-square PNG, and a DICOM whose mask keeps the
pixel spacing); classification answers every label with a score. Skipped without the ``monailabel`` extra.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from helpers.bundles import APP, TINY, load_script, require_monailabel  # noqa: E402

require_monailabel()

from helpers.monailabel_server import get as _get  # noqa: E402
from helpers.monailabel_server import infer as _infer  # noqa: E402
from helpers.monailabel_server import run_monailabel  # noqa: E402
from mflag_monai.transforms.io import read_cxr  # noqa: E402

make_demo_studies = load_script(APP / "demo_studies.py").make_demo_studies


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory, small_demo: Path) -> dict[str, str]:
    """Two SIIM DICOM, two CheXpert JPG and a non-square PNG export, flat in one folder; ``{kind: image id}``."""
    folder = tmp_path_factory.mktemp("studies")
    files = make_demo_studies(folder, small_demo, count=2)
    dicom = next(f for f in files if f.suffix == ".dcm")
    image, _ = read_cxr(dicom)
    crop = (image[:50, :60] * 255).round().astype(np.uint8)  # rows != columns: a transposed mask would show
    Image.fromarray(crop).save(folder / "export.png")
    jpg = next(f for f in files if f.suffix == ".jpg")
    return {"dicom": dicom.name[: -len(".dcm")], "jpg": jpg.stem, "png": "export", "folder": str(folder)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_bundles: Path, studies: dict[str, str]) -> Iterator[str]:
    """``monailabel start_server`` with the app copied out of the repository (the server writes into its app folder)."""
    conf = {"bundles_dir": str(tiny_bundles), "skip_trainers": "true", **{k: str(v) for k, v in TINY.items()}}
    with run_monailabel(tmp_path_factory.mktemp("monailabel"), studies["folder"], conf) as base:
        yield base


@pytest.mark.slow
def test_info_lists_both_2d_models_and_the_dicom_studies(server: str, studies: dict[str, str]) -> None:
    info = json.loads(_get(f"{server}/info/"))
    models = info["models"]
    assert models["segmentation"]["type"] == "segmentation" and models["segmentation"]["dimension"] == 2
    assert models["segmentation"]["labels"] == {"finding": 1}
    assert models["classification"]["type"] == "classification" and len(models["classification"]["labels"]) == 5
    listed = json.loads(_get(f"{server}/datastore/?output=all"))["objects"]
    assert {studies["dicom"], studies["jpg"], studies["png"]} <= set(listed)  # .dcm files are listed too


@pytest.mark.slow
def test_segmentation_mask_has_the_input_size(server: str, studies: dict[str, str], tiny_bundles: Path) -> None:
    eval_dir = tiny_bundles / "segmentation" / "eval"
    written_before = sorted(eval_dir.rglob("*")) if eval_dir.exists() else []
    png = _infer(server, "segmentation", studies["png"], "image", {"result_dtype": "uint8"})
    mask = np.asarray(Image.open(io.BytesIO(png)))
    assert mask.shape == (50, 60) and mask.dtype == np.uint8  # rows x columns of export.png
    assert set(np.unique(mask)) <= {0, 1}

    nii = _infer(server, "segmentation", studies["dicom"], "image", {})  # a DICOM's mask comes back as NIfTI
    label = nib.Nifti1Image.from_bytes(gzip.decompress(nii))
    image, meta = read_cxr(Path(studies["folder"]) / f"{studies['dicom']}.dcm")
    assert label.shape == image.shape[::-1]  # x = columns, y = rows
    assert np.allclose(label.header.get_zooms()[:2], meta["pixel_spacing"][::-1], rtol=1e-4)
    assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1}
    # the bundle's own writers (SaveMaskd) are left out of server inference: nothing lands in the bundle's eval/
    assert (sorted(eval_dir.rglob("*")) if eval_dir.exists() else []) == written_before


@pytest.mark.slow
def test_classification_answers_labels_with_scores(server: str, studies: dict[str, str]) -> None:
    for image in (studies["jpg"], studies["dicom"]):
        answer = json.loads(_infer(server, "classification", image, "json", {}))
        labels = {p["label"]: p["score"] for p in answer["prediction"]}
        assert list(labels) == ["atelectasis", "cardiomegaly", "consolidation", "edema", "pleural effusion"]
        assert all(0.0 <= s <= 1.0 for s in labels.values())
