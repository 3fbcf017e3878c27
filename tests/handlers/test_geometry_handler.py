"""mflag_monai.handlers.geometry: the latent-geometry handler on a tiny pre-training run, and the evaluation of the
trained model giving the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from torch import nn

from mflag_monai.data import build_text_feature_cache
from mflag_monai.data.text_features import TextFeatureCache, text_key
from mflag_monai.engines import MFLAGTrainer
from mflag_monai.evaluation.geometry import evaluate_geometry
from mflag_monai.evaluation.latents import GEOMETRY_METRICS
from mflag_monai.handlers.geometry import LatentGeometryHandler
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import MFLAG, build_mflag

TEXTS = [
    "no pneumothorax .",
    "moderate cardiomegaly .",
    "small left pleural effusion .",
    "lungs are clear .",
    "mild edema .",
    "stable cardiomegaly .",
]
NAMES = [f"geom_{name}" for name in GEOMETRY_METRICS]


class Wrapper(nn.Module):
    """Stands in for DDP: the model is ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


class TinyEncoder(nn.Module):
    """A few-parameter image encoder (post-ReLU pooled features, like the ResNet's): keeps the test fast."""

    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, self.feature_dim, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def tiny_mflag(text_encoder) -> MFLAG:
    return MFLAG(TinyEncoder(), text_encoder, proj_hidden_dim=16, proj_out_dim=8)


def identity(item: dict) -> dict:
    return item


@pytest.fixture(scope="module")
def setup(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("diagnostics")
    text_encoder = build_mflag(image_depth=18, text_model=tiny_bert_dir).text_encoder
    model = tiny_mflag(text_encoder)
    entries = [{"image": torch.randn(3, 32, 32), "report": TEXTS[i % len(TEXTS)]} for i in range(10)]
    datalist = {"training": entries[:8], "validation": entries[9:], "test": entries[6:]}
    # half the reports cached: the others must go through the frozen LM, as in training
    reports = {"training": [{"report": t} for t in TEXTS[:3]]}
    cache = build_text_feature_cache(reports, model.text_encoder, root / "text")
    batches = [{"image": torch.randn(4, 3, 32, 32), "report": TEXTS[:4]} for _ in range(2)]
    trainer = MFLAGTrainer(
        device=torch.device("cpu"),
        max_epochs=3,
        train_data_loader=batches,
        network=Wrapper(model),
        optimizer=torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3),
        loss_function=MFLAGLoss(),
        text_cache=cache,
    )
    handler = LatentGeometryHandler(
        datalist, identity, split="validation", interval=2, max_samples=5, output_dir=root / "eval"
    )
    handler.attach(trainer)
    seen: dict[int, dict] = {}
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.update({e.state.epoch: dict(e.state.metrics)}))
    trainer.run()
    return {
        "root": root,
        "model": model,
        "trainer": trainer,
        "handler": handler,
        "seen": seen,
        "datalist": datalist,
        "cache": cache,
    }


def test_handler_publishes_metrics_every_interval_and_at_the_end(setup) -> None:
    seen = setup["seen"]
    assert not set(NAMES) & set(seen[1])  # epoch 1: not due, and nothing stale
    for epoch in (2, 3):  # every 2 epochs, and the last one
        assert set(NAMES) <= set(seen[epoch])
        assert all(np.isfinite(seen[epoch][n]) for n in NAMES)
    # validation has 1 entry: the handler falls back to training, capped at max_samples
    assert setup["handler"]._split_used == "training" and len(setup["handler"].dataset()) == 5
    assert 1.0 <= seen[3]["geom_erank_feature"] <= 4.0  # 5 samples: at most 4 directions once centred
    assert 0.0 <= seen[3]["geom_alignment"] <= 4.0 and seen[3]["geom_uniformity_image"] < 0


def test_handler_writes_spectrum_files(setup) -> None:
    out = setup["root"] / "eval"
    content = json.loads((out / "spectrum.json").read_text())
    assert content["epoch"] == 3 and content["num_samples"] == 5 and content["split"] == "training"
    assert set(content["metrics"]) == set(NAMES)
    assert content["metrics"]["geom_erank_feature"] == pytest.approx(setup["seen"][3]["geom_erank_feature"])
    assert [len(v) for v in content["spectra"].values()] == [5, 5, 5]
    assert set(content["spectra"]) == {"image_feature", "image_proj", "text_proj"}
    assert (out / "spectrum.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_handler_leaves_the_model_and_the_random_state_alone(setup) -> None:
    trainer, model, handler = setup["trainer"], setup["model"], setup["handler"]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch_rng, np_rng = torch.get_rng_state(), np.random.get_state()
    handler(trainer)  # at the last epoch: due
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm running stats too
    assert torch.equal(torch_rng, torch.get_rng_state())
    assert all(np.array_equal(a, b) for a, b in zip(np_rng, np.random.get_state()))


def test_disabled_handler_attaches_nothing(setup) -> None:
    trainer = setup["trainer"]
    handler = LatentGeometryHandler(setup["datalist"], identity, interval=0)
    handler.attach(trainer)
    assert not trainer.has_event_handler(handler, Events.EPOCH_COMPLETED)
    assert trainer.has_event_handler(setup["handler"], Events.EPOCH_COMPLETED)  # what an enabled one registers


def test_evaluate_geometry_loads_weights_and_writes_reports(setup) -> None:
    root, model = setup["root"], setup["model"]
    torch.save(model.state_dict(), root / "model.pt")
    fresh = tiny_mflag(model.text_encoder)
    report = evaluate_geometry(
        fresh,
        setup["datalist"],
        identity,
        root / "evaluated",
        weights=root / "model.pt",
        split="test",
        text_cache=setup["cache"],
        max_samples=256,
        info={"run": "x"},
    )
    assert report["split"] == "test" and report["num_samples"] == 4 and report["run"] == "x"
    assert set(report["metrics"]) == set(NAMES)
    assert json.loads((root / "evaluated" / "geometry.json").read_text())["metrics"] == report["metrics"]
    assert (root / "evaluated" / "spectrum.png").is_file()
    # same weights, same pairs, same text path: the same numbers as the handler would give
    handler = LatentGeometryHandler(setup["datalist"]["test"], identity, max_samples=256)
    handler(setup["trainer"])
    trained = {f"geom_{k}": handler.last[k] for k in GEOMETRY_METRICS}
    assert report["metrics"] == pytest.approx(trained, rel=1e-5, abs=1e-6)


def distinct_report_features() -> TextFeatureCache:
    """Random, distinct language-model features for the six reports (the tiny random BERT gives nearly the same
    [CLS] feature for every text, so its report projection has a low rank whatever the projector does)."""
    g = torch.Generator().manual_seed(3)
    return TextFeatureCache(torch.randn(len(TEXTS), 32, generator=g), [text_key(t) for t in TEXTS], {})


def alarm_warnings(caplog, setup, model, threshold: float, text_cache=None, demo: bool = False) -> list[str]:
    """Run a geometry handler with the collapse alarm at ``threshold`` on ``model``; the warnings it logged (with
    ``demo``, the INFO lines)."""
    trainer = setup["trainer"]
    handler = LatentGeometryHandler(
        setup["datalist"], identity, split="training", max_samples=8, collapse_rank=threshold, demo=demo
    )
    network, cache = trainer.network, trainer.text_cache
    trainer.network, trainer.text_cache = Wrapper(model), text_cache or cache
    try:
        with caplog.at_level("INFO" if demo else "WARNING", logger="mflag_monai.handlers.geometry"):
            caplog.clear()
            handler(trainer)
            handler(trainer)  # once per run, however often it is due
    finally:
        trainer.network, trainer.text_cache = network, cache
    return [r.getMessage() for r in caplog.records if "Projection collapse" in r.getMessage()]


def test_collapse_alarm_fires_once_on_a_collapsed_projection(setup, caplog) -> None:
    import copy

    collapsed = copy.deepcopy(setup["model"])
    last = collapsed.image_projector[3]  # the second Linear of Linear-BN-ReLU-Linear-BN
    with torch.no_grad():  # every image projected onto one direction: effective rank ~1
        last.weight.copy_(torch.outer(torch.randn(last.out_features), torch.randn(last.in_features)))
    (message,) = alarm_warnings(caplog, setup, collapsed, threshold=3.0, text_cache=distinct_report_features())
    assert "effective rank of the image projection 1." in message and "--freeze_text_projector true" in message
    assert [r.levelname for r in caplog.records if "Projection collapse" in r.getMessage()] == ["WARNING"]
    # the demo says the same once, at INFO, marked as the demo's expected outcome
    (message,) = alarm_warnings(caplog, setup, collapsed, 3.0, text_cache=distinct_report_features(), demo=True)
    assert (
        message.startswith("Demo run: Projection collapse") and "effective rank of the image projection 1." in message
    )
    assert [r.levelname for r in caplog.records if "Projection collapse" in r.getMessage()] == ["INFO"]


def test_collapse_alarm_is_silent_on_a_healthy_model(setup, caplog) -> None:
    torch.manual_seed(1)
    healthy = tiny_mflag(setup["model"].text_encoder)  # freshly initialised: projections of full rank
    features = distinct_report_features()
    assert alarm_warnings(caplog, setup, healthy, threshold=3.0, text_cache=features) == []
    trainer = setup["trainer"]
    network, cache = trainer.network, trainer.text_cache
    trainer.network, trainer.text_cache = Wrapper(healthy), features
    try:
        eranks = LatentGeometryHandler(setup["datalist"], identity, split="training", max_samples=8)
        eranks(trainer)
    finally:
        trainer.network, trainer.text_cache = network, cache
    assert min(eranks.last["erank_image_proj"], eranks.last["erank_text_proj"]) > 3.0  # the silence is earned
    assert alarm_warnings(caplog, setup, healthy, threshold=0, text_cache=features) == []  # 0: off
