"""Weights and checkpoints that cannot be used: refused in one line naming the file (never suggesting to unpickle
them anyway); a damaged newest checkpoint falls back to the previous one; outputs are checked writable at start and
written with the umask's permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from mflag_monai.engines import TrainingCheckpointer, resume_from_latest
from mflag_monai.networks import load_weights_file
from mflag_monai.utils.errors import InputError
from mflag_monai.utils.io import atomic_write_json, require_writable, safe_torch_load


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
