"""mflag_monai.handlers.checkpoint: weights and checkpoints that cannot be used are refused in one line naming the
file (never suggesting to unpickle them anyway); a damaged newest checkpoint falls back to the previous one; outputs
are checked writable at start and written with the umask's permissions; the best model is written atomically and its
best score survives a resume."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from mflag_monai.handlers.checkpoint import (
    BestModelSaver,
    EncoderExporter,
    SafeCheckpointLoader,
    TrainingCheckpointer,
    resume_from_latest,
)
from mflag_monai.networks import load_weights_file
from mflag_monai.utils.errors import InputError
from mflag_monai.utils.io import (
    ChecksumMismatchError,
    atomic_torch_save,
    atomic_write_json,
    checksum_path,
    require_writable,
    safe_torch_load,
)


class Payload:
    """Unpickling this would call a function (here a harmless one): what a malicious checkpoint does."""

    def __reduce__(self):
        return (os.getpid, ())


def one_line(err: BaseException, path: Path) -> str:
    message = str(err)
    assert str(path) in message and "\n" not in message, message
    assert "weights_only" not in message, message  # never suggest loading it unsafely
    return message


@pytest.mark.parametrize(
    "payload",
    [{"w": Payload()}, Payload(), {"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, [nn.Linear(1, 1)]],
    ids=["dict", "object", "extra", "module"],
)
def test_unsafe_pickles_are_refused_naming_the_file(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    for load in (safe_torch_load, load_weights_file):
        with pytest.raises(InputError) as caught:
            load(path)
        assert "refusing to load" in one_line(caught.value, path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_damaged_weights_are_one_line_errors(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"not a checkpoint"}[damage])
    with pytest.raises(InputError) as caught:
        safe_torch_load(path)
    assert "damaged or not a torch file" in one_line(caught.value, path)


def _checkpoints(tmp_path: Path) -> tuple[Path, nn.Module]:
    net = nn.Linear(2, 2)
    ckpt_dir = tmp_path / "checkpoints"
    for epoch in (1, 2):
        with torch.no_grad():
            net.weight.fill_(epoch)
        TrainingCheckpointer.save_epoch(
            TrainingCheckpointer(ckpt_dir, {"network": net}), type("E", (), {"state": type("S", (), {"epoch": epoch})})
        )
    return ckpt_dir, net


def test_resume_falls_back_when_the_newest_checkpoint_is_truncated(tmp_path: Path, capsys) -> None:
    ckpt_dir, _ = _checkpoints(tmp_path)
    newest = ckpt_dir / "checkpoint_epoch=2.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    fresh = nn.Linear(2, 2)
    used = resume_from_latest(ckpt_dir, {"network": fresh})
    assert used == ckpt_dir / "checkpoint_epoch=1.pt"
    assert torch.all(fresh.weight == 1)
    assert "checkpoint_epoch=2.pt" in capsys.readouterr().out  # the damaged one is named


def test_resume_without_any_readable_checkpoint_is_one_line(tmp_path: Path) -> None:
    ckpt_dir, _ = _checkpoints(tmp_path)
    for path in ckpt_dir.glob("*.pt"):
        path.write_bytes(b"")
    with pytest.raises(InputError, match="no readable checkpoint") as caught:
        resume_from_latest(ckpt_dir, {"network": nn.Linear(2, 2)})
    assert "\n" not in str(caught.value)


def test_resume_refuses_an_unsafe_newest_checkpoint(tmp_path: Path) -> None:
    ckpt_dir, _ = _checkpoints(tmp_path)
    newest = ckpt_dir / "checkpoint_epoch=2.pt"
    torch.save({"network": Payload()}, newest)
    checksum_path(newest).unlink()  # a file without a checksum (older or foreign) is still never unpickled
    with pytest.raises(InputError, match="refusing to load") as caught:  # not silently the previous one
        resume_from_latest(ckpt_dir, {"network": nn.Linear(2, 2)})
    one_line(caught.value, newest)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder_is_found_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InputError, match="cannot write to the output folder") as caught:
            require_writable(tmp_path / "eval", folder)
        assert str(folder) in str(caught.value)
    finally:
        folder.chmod(0o755)


def test_output_under_a_file_is_found_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "models"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(InputError, match="cannot write to the output folder") as caught:
        require_writable(blocker / "checkpoints")
    assert str(blocker / "checkpoints") in str(caught.value)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = atomic_write_json({"a": 1}, tmp_path / "out.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_writes_keep_the_mode_of_the_file_they_replace(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("{}")
    path.chmod(0o640)
    atomic_write_json({"a": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


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
    engine.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: writes.append(target.stat().st_mtime_ns if target.exists() else None)
    )
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


class _Payload:
    """Any class: unpickling it would import and call code."""


def test_safe_checkpoint_loader_names_the_file_and_loads_good_ones(tmp_path) -> None:
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


def test_encoder_exporter_writes_the_weights_and_the_sidecar_once_per_iteration(tmp_path: Path) -> None:
    encoder = nn.Linear(3, 2)
    encoder.feature_dim = 2
    path = tmp_path / "encoder.pt"
    exporter = EncoderExporter(encoder, path, info={"image_depth": 18})
    engine = Engine(lambda e, b: None)
    exporter.attach(engine)
    engine.run([0], max_epochs=2)
    assert torch.equal(torch.load(path, weights_only=True)["weight"], encoder.weight)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["image_depth"] == 18 and sidecar["epoch"] == 2 and sidecar["feature_dim"] == 2
    before = path.stat().st_mtime_ns
    exporter(engine)  # COMPLETED after the last EPOCH_COMPLETED: same iteration, no second write
    assert path.stat().st_mtime_ns == before


def overwrite_inside(path: Path, size: int = 4096) -> None:
    """Damage a file in place the way a bad disk block or a stray write does: same size, 4 KB of other bytes."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - size // 2
    data[start : start + size] = bytes((i * 7 + 1) % 251 for i in range(size))
    path.write_bytes(bytes(data))


def test_resume_skips_a_checkpoint_overwritten_inside_and_says_so(tmp_path: Path, capsys) -> None:
    net = nn.Linear(64, 64)  # large enough that 4 KB land inside the tensor data
    ckpt_dir = tmp_path / "checkpoints"
    for epoch in (1, 2):
        with torch.no_grad():
            net.weight.fill_(epoch)
        TrainingCheckpointer(ckpt_dir, {"network": net}).save_epoch(
            type("E", (), {"state": type("S", (), {"epoch": epoch})})
        )
    newest = ckpt_dir / "checkpoint_epoch=2.pt"
    size = newest.stat().st_size
    overwrite_inside(newest)
    assert newest.stat().st_size == size
    torch.load(newest, weights_only=True)  # the damage is invisible to torch: it loads
    fresh = nn.Linear(64, 64)
    assert resume_from_latest(ckpt_dir, {"network": fresh}) == ckpt_dir / "checkpoint_epoch=1.pt"
    assert torch.all(fresh.weight == 1)
    out = capsys.readouterr().out
    assert "checksum mismatch" in out and "checkpoint_epoch=2.pt" in out and "previous checkpoint" in out


def test_rotated_checkpoints_take_their_checksums_with_them(tmp_path: Path) -> None:
    ckpt_dir = tmp_path / "checkpoints"
    saver = TrainingCheckpointer(ckpt_dir, {"network": nn.Linear(2, 2)}, n_saved=2)
    for epoch in (1, 2, 3):
        saver.save_epoch(type("E", (), {"state": type("S", (), {"epoch": epoch})}))
    assert sorted(p.name for p in ckpt_dir.iterdir()) == [
        "checkpoint_epoch=2.pt",
        "checkpoint_epoch=2.pt.sha256",
        "checkpoint_epoch=3.pt",
        "checkpoint_epoch=3.pt.sha256",
    ]


def test_stray_copies_beside_the_checkpoints_are_neither_resumed_nor_deleted(tmp_path: Path) -> None:
    ckpt_dir, _ = _checkpoints(tmp_path)
    stray = ckpt_dir / "checkpoint_epoch=6 (copy).pt"
    stray.write_bytes((ckpt_dir / "checkpoint_epoch=1.pt").read_bytes())
    assert TrainingCheckpointer.checkpoints(ckpt_dir) == [ckpt_dir / f"checkpoint_epoch={n}.pt" for n in (1, 2)]
    assert resume_from_latest(ckpt_dir, {"network": nn.Linear(2, 2)}) == ckpt_dir / "checkpoint_epoch=2.pt"
    assert stray.exists()


def _trained(tmp_path: Path, epochs: int, net: nn.Module) -> Path:
    trainer = Engine(lambda e, b: None)
    TrainingCheckpointer(tmp_path / "ckpt", {"network": net}, final_filename=None).attach(trainer)
    trainer.run([0], max_epochs=epochs)
    return tmp_path / "ckpt"


def test_resume_with_fewer_epochs_than_the_checkpoint_is_one_line(tmp_path: Path) -> None:
    ckpt_dir = _trained(tmp_path, 3, nn.Linear(2, 2))
    trainer = Engine(lambda e, b: None)
    trainer.state.max_epochs = 2
    with pytest.raises(InputError, match="at epoch 3, beyond this run's 2 epochs") as caught:
        resume_from_latest(ckpt_dir, {"network": nn.Linear(2, 2), "trainer": trainer})
    one_line(caught.value, ckpt_dir / "checkpoint_epoch=3.pt")


def test_resume_from_another_networks_checkpoint_is_one_line(tmp_path: Path) -> None:
    ckpt_dir = _trained(tmp_path, 1, nn.Linear(2, 2))
    with pytest.raises(InputError, match="does not fit this run") as caught:
        resume_from_latest(ckpt_dir, {"network": nn.Linear(3, 2)})  # another width: another depth or bundle
    one_line(caught.value, ckpt_dir / "checkpoint_epoch=1.pt")


def test_inference_refuses_weights_overwritten_inside(tmp_path: Path) -> None:
    good = nn.Linear(64, 64)
    path = atomic_torch_save(good.state_dict(), tmp_path / "model.pt")
    overwrite_inside(path)
    net = nn.Linear(64, 64)
    with pytest.raises(ChecksumMismatchError) as caught:
        SafeCheckpointLoader(load_path=str(path), load_dict={"model": net})(Engine(lambda e, b: None))
    assert "checksum mismatch" in one_line(caught.value, path)
    with pytest.raises(ChecksumMismatchError):  # downstream training reads encoder.pt the same way
        load_weights_file(path)
