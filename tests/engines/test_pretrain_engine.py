"""The pre-training engine: cached and uncached text paths agree, missing reports fall back to the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mflag_monai.data import build_text_feature_cache
from mflag_monai.engines import MFLAGTrainer, paper_restart_period, resolve_amp_dtype
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import batch_text_inputs, build_mflag

TEXTS = ["no pneumothorax .", "moderate cardiomegaly .", "small left pleural effusion .", "lungs are clear ."]


def make_trainer(model, cache=None, batches=None, **kwargs) -> MFLAGTrainer:
    params = [p for p in model.parameters() if p.requires_grad]
    return MFLAGTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=batches or [],
        network=model,
        optimizer=torch.optim.AdamW(params, lr=1e-3),
        loss_function=MFLAGLoss(),
        text_cache=cache,
        **kwargs,
    )


def test_cached_and_uncached_losses_agree_in_fp32(tiny_bert_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir).train()
    cache = build_text_feature_cache({"training": [{"report": t} for t in TEXTS]}, model.text_encoder, tmp_path)
    images = torch.randn(4, 3, 64, 64)
    loss = MFLAGLoss()
    uncached = loss(model(images, texts=TEXTS))["loss"]
    features, missing = cache.lookup(TEXTS)
    assert not missing.any()
    cached = loss(model(images, text_features=features))["loss"]
    assert abs(cached.item() - uncached.item()) <= 1e-5


def test_missing_reports_are_encoded_not_zeroed(tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir)
    cache = build_text_feature_cache({"training": [{"report": t} for t in TEXTS[:2]]}, model.text_encoder, tmp_path)
    texts, features = batch_text_inputs({"report": TEXTS}, model, cache)
    assert texts is None
    assert torch.allclose(features, model.language_features(TEXTS), atol=1e-6)
    assert features[2:].abs().sum() > 0


def test_training_iterations_run_and_report_both_losses(tiny_bert_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir, proj_hidden_dim=64, proj_out_dim=32)
    batches = [{"image": torch.randn(4, 3, 48, 48), "report": TEXTS} for _ in range(3)]
    trainer = make_trainer(model, None, batches, channels_last=True)
    trainer.run()
    out = trainer.state.output
    assert set(out) == {"loss", "loss_align", "loss_orth", "loss_orth_floor"}
    assert out["loss"].item() == pytest.approx(out["loss_align"].item() + out["loss_orth"].item(), rel=1e-5)


def test_helpers() -> None:
    assert paper_restart_period(50, 213_000, 512) == int(50 * 213_000 // 4 // 512 * 0.4)
    assert paper_restart_period(1, 10, 512) == 1
    assert resolve_amp_dtype("auto", "cpu") == torch.bfloat16
    assert resolve_amp_dtype(torch.float16, "cuda") == torch.float16


@pytest.mark.parametrize("demo", [False, True])
def test_a_batch_below_the_orthogonality_floor_is_warned_except_in_the_demo(
    tiny_bert_dir: Path, demo: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Batch 4 against ResNet-18's 512 features: a real run is warned with the settings to use; the demo, whose small
    batch is expected, says so once at INFO with the same advice."""
    model = build_mflag(image_depth=18, text_model=str(tiny_bert_dir))
    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=4)
    trainer = make_trainer(model, demo=demo)
    trainer.data_loader = loader
    with caplog.at_level("INFO"):
        trainer._warn_below_floor(trainer)
    records = [r for r in caplog.records if "--micro_batch_size" in r.getMessage()]
    assert len(records) == 1 and "--batch_size 512" in records[0].getMessage()
    assert records[0].levelname == ("INFO" if demo else "WARNING")
