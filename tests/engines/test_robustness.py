"""BestModelSaver (atomic best-model file whose best score survives a resume) and SkippedImageCounter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from mflag_monai.engines import BestModelSaver, SkippedImageCounter


def scripted_evaluator(scores: list[float]) -> Engine:
    """An engine that, like a MONAI evaluator with a key metric, tracks best_metric/best_metric_epoch per epoch."""
    engine = Engine(lambda e, b: None)
    engine.state.best_metric, engine.state.best_metric_epoch = -1.0, -1

    @engine.on(Events.EPOCH_COMPLETED)  # registered before the saver, as MONAI registers its comparison
    def _compare(e: Engine) -> None:
        score = scores[e.state.epoch - 1]
        if score > e.state.best_metric:
            e.state.best_metric, e.state.best_metric_epoch = score, e.state.epoch

    return engine


def test_saves_only_improvements_atomically(tmp_path: Path) -> None:
    net = nn.Linear(2, 1)
    target = tmp_path / "model.pt"
    engine = scripted_evaluator([0.5, 0.4, 0.7])
    saver = BestModelSaver(net, target)
    saver.attach(engine)
    writes = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: writes.append(target.stat().st_mtime_ns if target.exists() else None))
    with torch.no_grad():
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: net.weight.add_(1.0))
        engine.run([0], max_epochs=3)
    assert writes[0] == writes[1] != writes[2]  # epoch 2 (0.4) did not overwrite epoch 1's model
    assert torch.equal(torch.load(target, weights_only=True)["weight"], net.weight)
    assert saver.state_dict() == {"best_metric": 0.7, "best_metric_epoch": 3}
    assert not list(tmp_path.glob(".*.tmp"))


def test_resumed_best_score_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"the better model of the crashed run")
    saver = BestModelSaver(nn.Linear(2, 1), target)
    saver.load_state_dict({"best_metric": 0.9, "best_metric_epoch": 2})
    engine = scripted_evaluator([0.0, 0.0, 0.6])  # a fresh evaluator would call 0.6 a new best
    saver.attach(engine)
    engine.run([0], max_epochs=3)
    assert target.read_bytes() == b"the better model of the crashed run"


def test_skipped_images_counter() -> None:
    batches = [{"skipped_images": 1}, {"skipped_images": 0}, {"skipped_images": 2}]
    engine = Engine(lambda e, b: None)
    counter = SkippedImageCounter()
    counter.attach(engine)
    engine.run(batches, max_epochs=2)
    assert engine.state.metrics["skipped_images"] == 6


def test_skipped_images_counter_on_list_batches() -> None:
    from mflag_monai.data import skip_none_list

    batches = [skip_none_list([{"image": 1}, None]), skip_none_list([None, None, {"image": 2}])]
    engine = Engine(lambda e, b: None)
    counter = SkippedImageCounter()
    counter.attach(engine)
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["skipped_images"] == 3 and [len(b) for b in batches] == [1, 1]


class _Payload:
    """Any class: unpickling it would import and call code."""


def test_safe_checkpoint_loader_names_the_file_and_loads_good_ones(tmp_path) -> None:
    from ignite.engine import Engine

    from mflag_monai.engines import SafeCheckpointLoader
    from mflag_monai.utils.io import UnsafeCheckpointError

    net = torch.nn.Linear(3, 2)
    unsafe = tmp_path / "model.pt"
    torch.save({"weight": _Payload()}, unsafe)
    with pytest.raises(UnsafeCheckpointError) as err:
        SafeCheckpointLoader(load_path=str(unsafe), load_dict={"model": net})(Engine(lambda e, b: None))
    assert str(unsafe) in str(err.value) and "weights_only" not in str(err.value)
    truncated = tmp_path / "truncated.pt"
    good = torch.nn.Linear(3, 2)
    torch.save(good.state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(Exception, match="truncated.pt"):
        SafeCheckpointLoader(load_path=str(truncated), load_dict={"model": net})(Engine(lambda e, b: None))
    fine = tmp_path / "fine.pt"
    torch.save(good.state_dict(), fine)
    SafeCheckpointLoader(load_path=str(fine), load_dict={"model": net})(Engine(lambda e, b: None))
    assert torch.equal(net.weight, good.weight)
