"""Images that fail to decode during training: skipped, logged and counted when the setting says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader

from helpers.dicom import write_dicom
from mflag_monai.data import build_dataset, skip_none_collate
from mflag_monai.engines import MFLAGTrainer
from mflag_monai.handlers import SkippedImageCounter
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import build_mflag
from mflag_monai.transforms import cxr_pretrain_transforms
from mflag_monai.utils.errors import find_input_error


@pytest.fixture()
def items(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    good = [write_dicom(tmp_path / f"{i}.dcm", (rng.random((40, 40)) * 4095).astype(np.uint16)) for i in range(5)]
    bad = tmp_path / "truncated.dcm"
    bad.write_bytes(good[0].read_bytes()[:-500])  # pixel data cut short after the dataset was listed
    words = ["no pneumothorax .", "moderate cardiomegaly .", "lungs are clear ."]
    return [{"image": str(p), "report": words[i % 3]} for i, p in enumerate([*good[:3], bad, *good[3:]])]


def test_loader_skips_and_counts(items, tmp_path: Path) -> None:
    ds = build_dataset(
        items,
        cxr_pretrain_transforms(resize=32, image_size=24),
        cache_dir=tmp_path / "c",
        signature="s",
        skip_bad_images=True,
    )
    batches = list(DataLoader(ds, batch_size=3, collate_fn=skip_none_collate))
    assert sum(int(b["skipped_images"]) for b in batches) == 1
    assert sum(len(b["image"]) for b in batches) == 5


def test_memory_cache_skips_and_counts(items) -> None:
    # MONAI's CacheDataset decodes in its constructor: the bad file must not stop the run there either
    ds = build_dataset(
        items, cxr_pretrain_transforms(resize=32, image_size=24), cache="memory", skip_bad_images=True, num_workers=0
    )
    batches = list(DataLoader(ds, batch_size=3, collate_fn=skip_none_collate))
    assert sum(int(b["skipped_images"]) for b in batches) == 1
    assert sum(len(b["image"]) for b in batches) == 5


def test_without_the_setting_the_error_names_the_file(items, tmp_path: Path) -> None:
    ds = build_dataset(items, cxr_pretrain_transforms(resize=32, image_size=24), cache="none")
    with pytest.raises(Exception) as info:
        list(DataLoader(ds, batch_size=3))
    chain, err = [], info.value  # MONAI wraps the loader's error; the cause names the file and the reason
    while err is not None:
        chain.append(str(err))
        err = err.__cause__
    assert any("truncated.dcm: truncated pixel data" in m for m in chain), chain


def test_trainer_logs_the_count(items, tmp_path: Path, tiny_bert_dir: Path) -> None:
    torch.manual_seed(0)
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir, proj_hidden_dim=32, proj_out_dim=16)
    ds = build_dataset(items, cxr_pretrain_transforms(resize=32, image_size=24), cache="none", skip_bad_images=True)
    loader = DataLoader(ds, batch_size=3, collate_fn=skip_none_collate)
    trainer = MFLAGTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=loader,
        network=model,
        optimizer=torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]),
        loss_function=MFLAGLoss(),
    )
    SkippedImageCounter().attach(trainer)  # as the bundle's handler list does
    trainer.run()
    assert trainer.state.metrics["skipped_images"] == 2  # one per epoch


def test_validation_split_leaves_bad_images_out_and_counts_them(items, capsys) -> None:
    from mflag_monai.data import build_eval_dataset
    from mflag_monai.transforms import cxr_eval_transforms

    transform = cxr_eval_transforms(resize=32, image_size=24)
    with pytest.raises(Exception) as caught:  # without the setting: stops; the error behind MONAI's names the file
        build_eval_dataset(items, transform)
    assert "truncated.dcm: truncated pixel data" in str(find_input_error(caught.value))
    ds = build_eval_dataset(items, transform, skip_bad_images=True)
    assert len(ds) == 5 and "Skipping 1 of 6 validation images" in capsys.readouterr().out
    batches = list(DataLoader(ds, batch_size=4))  # the plain collate: every item is a loaded image
    assert sum(len(b["image"]) for b in batches) == 5


def test_geometry_subset_leaves_bad_images_out(items) -> None:
    from mflag_monai.handlers import LatentGeometryHandler
    from mflag_monai.transforms import cxr_eval_transforms

    data = {"training": items, "validation": items}
    handler = LatentGeometryHandler(data, cxr_eval_transforms(resize=32, image_size=24), skip_bad_images=True)
    assert len(handler.dataset()) == 5
    with pytest.raises(Exception) as caught:
        LatentGeometryHandler(data, cxr_eval_transforms(resize=32, image_size=24)).dataset()
    assert "truncated.dcm: truncated pixel data" in str(find_input_error(caught.value))


def test_the_image_cache_holds_no_report_text(items, tmp_path: Path) -> None:
    ds = build_dataset(items, cxr_pretrain_transforms(resize=32, image_size=24), cache_dir=tmp_path / "c", signature="p",
                       skip_bad_images=True)  # fmt: skip
    loaded = [ds[i] for i in range(len(ds))]
    assert [x["report"] for x in loaded if x is not None] == [
        e["report"] for e in items if "truncated" not in e["image"]
    ]
    assert all(x["image_path"] == e["image"] for x, e in zip(loaded, items) if x is not None)
    files = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".pt"]) == 5
    for path in files:
        content = path.read_bytes()
        for text in {e["report"] for e in items}:
            assert text.encode() not in content, f"report text in {path}"
    again = build_dataset(items, cxr_pretrain_transforms(resize=32, image_size=24), cache_dir=tmp_path / "c", signature="p",
                          skip_bad_images=True)  # fmt: skip
    assert again[0]["report"] == items[0]["report"]  # read back from the cache, with the entry's own fields
