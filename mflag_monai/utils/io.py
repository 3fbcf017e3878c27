"""Crash-safe file writing."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import InputError

__all__ = [
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "file_mode",
    "require_file",
    "require_writable",
    "safe_torch_load",
]

_UMASK_LOCK = threading.Lock()


def file_mode(path: str | os.PathLike | None = None) -> int:
    """The permission bits a new file gets (``0o666`` less the umask), or those of ``path`` when it exists."""
    if path is not None and os.path.exists(path):
        return os.stat(path).st_mode & 0o7777
    with _UMASK_LOCK:  # the umask can only be read by setting it
        umask = os.umask(0o22)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Write through ``write(fileobj)`` into a temporary sibling, fsync it, then rename over ``path``.

    A crash leaves either the old file or the new one, never a half-written file. The file gets the mode of the file
    it replaces, or ``0o666`` less the umask for a new one, as ``open()`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(path)  # mkstemp makes 0600 files: give the result the mode a plain open() would
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(Path(path), lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path``."""
    return atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def require_file(path: str | os.PathLike, hint: str) -> str:
    """Return ``path`` if it is a file; otherwise raise ``FileNotFoundError`` naming it and saying what to do."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found: {hint}")
    return str(path)


def require_writable(*folders: str | os.PathLike) -> None:
    """Create ``folders`` if needed and check that files can be written in each, before any work is done.

    Raises:
        InputError: naming the folder that cannot be created or written to (so a run stops at start, not after an
            epoch).
    """
    for folder in folders:
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise InputError(f"cannot write to the output folder: {reason}", folder) from err


# What torch raises for a file cut short or damaged (zip reader, pickle stream, storage sizes).
_DAMAGED = (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError)


class UnsafeCheckpointError(InputError, pickle.UnpicklingError):
    """A weights file that holds more than tensors and plain containers: refused, never executed."""


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors that name the file.

    Raises:
        UnsafeCheckpointError: the file holds objects other than tensors and plain containers (arbitrary code could
            run if it were unpickled); it is refused.
        InputError: the file is missing, truncated or not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line.upper()), "")
        if not first:  # not a refused class or function: a byte stream that is no pickle at all
            advice = ("weights_only", "weights only", "please", "documentation", "trusted")
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            message = next((x for x in lines if not any(a in x.lower() for a in advice)), "not a pickle stream")
            raise InputError(f"cannot read weights, the file is damaged or not a torch file ({message})", path) from err
        detail = f": {first.split('Please')[0].strip()}"
        raise UnsafeCheckpointError(
            f"refusing to load a file that holds more than tensors and plain containers{detail}", path
        ) from err
    except _DAMAGED as err:
        message = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
        raise InputError(f"cannot read weights, the file is damaged or not a torch file ({message})", path) from err
