"""mflag_monai.utils.io: weight files carry a SHA-256 sidecar that loading verifies; files from before checksums
load with one warning."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch

from mflag_monai.utils.errors import InputError
from mflag_monai.utils.io import (
    ChecksumMismatchError,
    atomic_torch_save,
    checksum_path,
    safe_torch_load,
    verify_checksum,
)


def test_saved_weights_carry_a_sha256sum_compatible_sidecar(tmp_path: Path) -> None:
    path = atomic_torch_save({"w": torch.arange(10.0)}, tmp_path / "model.pt")
    digest, name = checksum_path(path).read_text().split()
    assert name == "model.pt" and digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert verify_checksum(path) is True
    assert torch.equal(safe_torch_load(path)["w"], torch.arange(10.0))


def test_a_replaced_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = atomic_torch_save({"w": torch.zeros(3)}, tmp_path / "model.pt")
    torch.save({"w": torch.ones(3)}, path)  # valid weights, but not the ones written with the checksum
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch") as caught:
        safe_torch_load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreadable_sidecar_is_not_taken_as_verified(tmp_path: Path) -> None:
    path = atomic_torch_save({"w": torch.zeros(3)}, tmp_path / "model.pt")
    checksum_path(path).write_text("garbage\n")
    with pytest.raises(ChecksumMismatchError, match="unreadable checksum"):
        safe_torch_load(path)


def test_files_without_a_checksum_load_with_one_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with caplog.at_level(logging.WARNING, logger="mflag_monai.utils.io"):
        safe_torch_load(path)
        safe_torch_load(path)
    warnings = [r for r in caplog.records if "no legacy.pt.sha256 checksum" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    import errno

    from mflag_monai.utils.errors import find_input_error
    from mflag_monai.utils.io import atomic_write

    path = atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    before = path.read_bytes()

    def full(_):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(InputError, match="No space left on device while writing") as caught:
        atomic_write(path, full)
    assert str(path) in str(caught.value) and path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    bare = OSError(errno.ENOSPC, "No space left on device")  # raised elsewhere (a log, a cache): still a user error
    assert find_input_error(RuntimeError("wrapped")) is None and find_input_error(bare) is bare
