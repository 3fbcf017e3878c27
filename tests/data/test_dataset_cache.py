"""The preprocessing cache: DICOMs are decoded in the first epoch only; augmentation still runs every epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader

import mflag_monai.transforms.io as cxr_io
from helpers.dicom import write_dicom
from mflag_monai.data import build_dataset
from mflag_monai.transforms import cxr_pretrain_transforms


@pytest.fixture()
def dicom_items(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "image": str(write_dicom(tmp_path / f"{i}.dcm", (rng.random((40, 36)) * 4095).astype(np.uint16))),
            "report": f"r{i}",
        }
        for i in range(6)
    ]


@pytest.mark.parametrize("mode", ["persistent", "memory"])
def test_second_epoch_decodes_no_dicom(dicom_items, tmp_path: Path, monkeypatch, mode: str) -> None:
    decodes = []
    real = cxr_io.read_dicom

    def counting(path, *args, **kwargs):
        decodes.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cxr_io, "read_dicom", counting)
    ds = build_dataset(
        dicom_items,
        cxr_pretrain_transforms(resize=32, image_size=24),
        cache=mode,
        cache_dir=tmp_path / "c",
        signature="t",
    )
    loader = DataLoader(ds, batch_size=3, num_workers=0)
    first = torch.cat([b["image"] for b in loader])
    after_first = len(decodes)
    assert after_first == len(dicom_items)
    second = torch.cat([b["image"] for b in loader])
    assert len(decodes) == after_first  # the second epoch decodes nothing
    assert not torch.equal(first, second)  # random augmentation still runs


def test_persistent_cache_survives_a_new_dataset_and_signature_separates(
    dicom_items, tmp_path: Path, monkeypatch
) -> None:
    decodes = []
    real = cxr_io.read_dicom
    monkeypatch.setattr(cxr_io, "read_dicom", lambda p, *a, **k: decodes.append(p) or real(p, *a, **k))
    for _ in range(2):  # a restarted run reuses the files on disk
        ds = build_dataset(
            dicom_items, cxr_pretrain_transforms(resize=32, image_size=24), cache_dir=tmp_path / "c", signature="r32"
        )
        [ds[i] for i in range(len(ds))]
    assert len(decodes) == len(dicom_items)
    ds = build_dataset(
        dicom_items, cxr_pretrain_transforms(resize=40, image_size=24), cache_dir=tmp_path / "c", signature="r40"
    )
    [ds[i] for i in range(len(ds))]
    assert len(decodes) == 2 * len(dicom_items)  # a different resize never reads the other cache


def test_cached_images_are_uint8(dicom_items, tmp_path: Path) -> None:
    ds = build_dataset(
        dicom_items, cxr_pretrain_transforms(resize=32, image_size=24), cache_dir=tmp_path / "c", signature="t"
    )
    ds[0]
    stored = torch.load(next((tmp_path / "c").rglob("*.pt")), weights_only=True)
    assert stored["image"].dtype == torch.uint8 and tuple(stored["image"].shape) == (1, 32, 32)
    with pytest.raises(ValueError):
        build_dataset(dicom_items, cxr_pretrain_transforms(), cache="disk")


def test_an_image_replaced_at_the_same_path_is_decoded_again(dicom_items, tmp_path: Path) -> None:
    transforms = cxr_pretrain_transforms(resize=32, image_size=32, max_rotation_deg=0)
    path = Path(dicom_items[0]["image"])

    def cached_image() -> torch.Tensor:
        ds = build_dataset(dicom_items[:1], transforms, cache_dir=tmp_path / "c", signature="t")
        return ds._cachecheck({"image": str(path)})["image"]  # the stored (pre-augmentation) image

    before = cached_image()
    write_dicom(path, np.tile(np.arange(36, dtype=np.uint16) * 100, (40, 1)))  # same path, new content
    after = cached_image()
    assert not torch.equal(before, after)
    assert len(list((tmp_path / "c").rglob("*.pt"))) == 2  # a new entry, keyed by the new file
