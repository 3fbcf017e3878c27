"""The MONAI Label app with a DICOMweb datastore (``--studies <orthanc>/dicom-web``): radiographs listed from a started
Orthanc, segmented and classified as their DICOM files are, and a saved label stored back as a DICOM SEG.

Two demo SIIM radiographs are stored with new UIDs (the Orthanc is shared by the session's tests), cropped so that
rows != columns (a transposed mask would show): a MONOCHROME2 CR, and a 12-bit MONOCHROME1 DX with a VOI window (the
datastore's NIfTI conversion of it has neither the window nor the original polarity). Skipped without the
``monailabel`` extra or without Orthanc and its DICOMweb plugin.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from helpers.bundles import TINY, require_monailabel

require_monailabel()

from helpers.monailabel_server import get, infer, run_monailabel, save_label  # noqa: E402
from mflag_monai.dicom import fetch_instances, find_instances, read_seg, store_instances  # noqa: E402

if TYPE_CHECKING:
    from helpers.orthanc import OrthancServer

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


def _radiograph(source: Path, out: Path, rows: int, columns: int, dx: bool) -> Path:
    """A copy of ``source`` with new UIDs, cropped to ``rows x columns``; ``dx``: a 12-bit MONOCHROME1 DX with a VOI
    window instead of the 8-bit MONOCHROME2 CR."""
    ds = pydicom.dcmread(source)
    pixels = ds.pixel_array[:rows, :columns]
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows, ds.Columns = rows, columns
    ds.PixelSpacing = [0.2, 0.3]  # rows, columns: unequal, so a swapped spacing would show too
    if dx:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
        ds.Modality = "DX"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.WindowCenter, ds.WindowWidth = 2048, 3000
        ds.PixelData = (4095 - pixels.astype(np.uint16) * 16).astype(np.uint16).tobytes()
    else:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(out)
    return out


@pytest.fixture(scope="module")
def radiographs(orthanc: OrthancServer, small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"cr": 64 x 48 CR, "dx": 40 x 64 DX}`` files, stored in the Orthanc."""
    sources = sorted((small_demo / "siim-pneumothorax").rglob("*.dcm"))[:2]
    folder = tmp_path_factory.mktemp("radiographs")
    files = {
        "cr": _radiograph(sources[0], folder / "cr.dcm", 64, 48, dx=False),
        "dx": _radiograph(sources[1], folder / "dx.dcm", 40, 64, dx=True),
    }
    store_instances(orthanc.dicomweb, list(files.values()))
    return files


@pytest.fixture(scope="module")
def server(
    orthanc: OrthancServer, radiographs: dict[str, Path], tiny_bundles: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``monailabel start_server --studies <orthanc>/dicom-web``, its DICOMweb cache in a temporary folder."""
    root = tmp_path_factory.mktemp("monailabel_dicomweb")
    conf = {"bundles_dir": str(tiny_bundles), "skip_trainers": "true", **{k: str(v) for k, v in TINY.items()}}
    env = {"MONAI_LABEL_DICOMWEB_CACHE_PATH": str(root / "cache")}
    with run_monailabel(root, orthanc.dicomweb, conf, env) as base:
        yield base


def _nifti(data: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)


def _series(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.mark.slow
def test_radiographs_are_listed_and_inferred_as_their_dicom_files(
    server: str, radiographs: dict[str, Path], tiny_bundles: Path
) -> None:
    listed = json.loads(get(f"{server}/datastore/?output=all"))["objects"]
    uids = {name: str(_series(path).SeriesInstanceUID) for name, path in radiographs.items()}
    assert set(uids.values()) <= set(listed)  # CR and DX, though MONAI Label's own filter is {"Modality": "CT"}
    eval_dir = tiny_bundles / "segmentation" / "eval"
    written_before = sorted(eval_dir.rglob("*")) if eval_dir.exists() else []

    for name, path in radiographs.items():
        ds = pydicom.dcmread(path)
        rows, columns = int(ds.Rows), int(ds.Columns)
        # the series id (what a viewer sends) and the DICOM file itself (a local path, through the same app)
        from_series = _nifti(infer(server, "segmentation", uids[name], "image", {}))
        from_file = _nifti(infer(server, "segmentation", str(path), "image", {}))
        mask = np.asarray(from_series.dataobj)
        assert mask.shape == (columns, rows, 1) and mask.dtype == np.uint8, name  # x = columns, one slice
        assert set(np.unique(mask)) <= {0, 1}
        assert np.array_equal(mask[..., 0], np.asarray(from_file.dataobj)), name  # pixel for pixel

        # the mask has the geometry of the image the datastore serves a viewer, whose x runs along the columns
        image = _nifti(get(f"{server}/datastore/image?image={uids[name]}"))
        assert image.shape == mask.shape and np.allclose(image.affine, from_series.affine), name
        if ds.PhotometricInterpretation == "MONOCHROME2":  # stored values as they are: the pixel layout shows
            assert np.array_equal(np.asarray(image.dataobj)[..., 0].T, ds.pixel_array), name

        scores = json.loads(infer(server, "classification", uids[name], "json", {}))["prediction"]
        direct = json.loads(infer(server, "classification", str(path), "json", {}))["prediction"]
        assert [p["label"] for p in scores] == [p["label"] for p in direct] and len(scores) == 5
        assert np.allclose([p["score"] for p in scores], [p["score"] for p in direct], atol=1e-6), name

    # the bundle's own writers (SaveMaskd) are left out of server inference: nothing lands in the bundle's eval/
    assert (sorted(eval_dir.rglob("*")) if eval_dir.exists() else []) == written_before


@pytest.mark.slow
def test_a_saved_label_is_stored_in_orthanc_as_a_seg(
    server: str, radiographs: dict[str, Path], orthanc: OrthancServer, tmp_path: Path
) -> None:
    saved = {}
    for name, path in radiographs.items():
        ds = _series(path)
        rows, columns = int(ds.Rows), int(ds.Columns)
        label = np.zeros((rows, columns), dtype=np.uint8)  # off-centre and not square: flips and transposes show
        label[3 : rows // 2, columns // 3 : columns - 2] = 1
        label[rows - 4 :, :5] = 1
        series = str(ds.SeriesInstanceUID)
        info = {"label_info": [{"name": "finding", "idx": 1}]}
        if name == "cr":  # as 3D Slicer saves: a NIfTI label in the geometry of the image it downloaded
            image = _nifti(get(f"{server}/datastore/image?image={series}"))
            data = gzip.compress(nib.Nifti1Image(label.T[..., None], image.affine).to_bytes())
            answer = save_label(server, series, "label.nii.gz", data, info)
        else:  # as OHIF's MONAI Label client would: the raw labelmap of the displayed image, columns varying fastest
            answer = save_label(server, series, "label.bin", label.tobytes(), info)
        assert answer["image"] == series
        saved[series] = (ds, label)

    for series, (ds, label) in saved.items():
        study = str(ds.StudyInstanceUID)
        segs = [i for i in find_instances(orthanc.dicomweb, study) if i["SOPClassUID"] == SEGMENTATION_STORAGE]
        assert len(segs) == 1 and segs[0]["Modality"] == "SEG", segs
        files = fetch_instances(orthanc.dicomweb, study, segs[0]["SeriesInstanceUID"], tmp_path / "back")
        seg = pydicom.dcmread(files[0])
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series
        assert (
            seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
        )
        assert [s.SegmentAlgorithmType for s in seg.SegmentSequence] == ["SEMIAUTOMATIC"]
        masks = read_seg(files[0])
        assert list(masks) == ["finding"] and np.array_equal(masks["finding"], label.astype(bool))

    # MONAI Label counts the labelled series from the server's SEGs, and training reads the DICOM files and masks
    assert set(saved) <= set(json.loads(get(f"{server}/datastore/?output=all"))["objects"])
    status = json.loads(get(f"{server}/datastore/"))
    assert status["completed"] >= len(saved) and status["label_tags"].get("final") == len(saved)
    pairs = {
        _series(Path(p["image"])).SeriesInstanceUID: p for p in json.loads(get(f"{server}/datastore/?output=train"))
    }
    for series, (_, label) in saved.items():
        assert np.array_equal(np.asarray(Image.open(pairs[series]["label"])), label)
