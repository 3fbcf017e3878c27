"""Crash-safe file writing, and weight files that prove they are the ones written.

Every weight or checkpoint file written through :func:`atomic_torch_save` gets a ``<file>.sha256`` sidecar (the
``sha256sum`` format, so ``sha256sum -c model.pt.sha256`` checks it by hand too); :func:`safe_torch_load` verifies it
before unpickling anything. A file damaged in place (same size, bytes overwritten) therefore fails in one line
instead of loading wrong weights. Files without a sidecar (written before checksums existed, or by another tool) load
with a one-time warning.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import pickle
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "ChecksumMismatchError",
    "atomic_torch_save",
    "checksum_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "file_mode",
    "require_file",
    "require_writable",
    "safe_torch_load",
    "sha256_file",
    "verify_checksum",
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


def atomic_write(path: str | os.PathLike, write, checksum: bool = False) -> Path:
    """Write through ``write(fileobj)`` into a temporary sibling, fsync it, then rename over ``path``.

    A crash leaves either the old file or the new one, never a half-written file. The file gets the mode of the file
    it replaces, or ``0o666`` less the umask for a new one, as ``open()`` would give it. With ``checksum``, the
    ``<path>.sha256`` sidecar of the new content is written (atomically) just before the rename: a crash between the
    two leaves a pair that disagrees, which loading reports rather than trusts.
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
        if checksum:
            _write_checksum(path, sha256_file(tmp))
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InputError(
                f"{err.strerror or 'disk full'} while writing; the previous file (if any) is intact: free space or "
                "write to another folder",
                path,
            ) from err
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(Path(path), lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path``, with its ``<path>.sha256`` sidecar."""
    return atomic_write(Path(path), lambda f: torch.save(obj, f), checksum=True)


def checksum_path(path: str | os.PathLike) -> Path:
    """The SHA-256 sidecar of a file: ``model.pt`` -> ``model.pt.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_checksum(path: Path, hexdigest: str) -> None:
    atomic_write_bytes(checksum_path(path), f"{hexdigest}  {path.name}\n".encode())


class ChecksumMismatchError(InputError):
    """A weight file whose bytes are not those its ``.sha256`` sidecar recorded when it was written."""


_UNVERIFIED_WARNED: set[str] = set()


def verify_checksum(path: str | os.PathLike) -> bool:
    """Check ``path`` against its ``.sha256`` sidecar.

    Returns ``True`` when it matches, ``False`` when there is no sidecar (a file from before checksums, or from
    another tool: warned about once per file).

    Raises:
        ChecksumMismatchError: the sidecar records other bytes, or cannot be read.
    """
    path = Path(path)
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        if str(path.resolve()) not in _UNVERIFIED_WARNED:
            _UNVERIFIED_WARNED.add(str(path.resolve()))
            logger.warning(
                "%s has no %s checksum (written before checksums, or by another tool): loaded unverified",
                path,
                sidecar.name,
            )
        return False
    recorded = sidecar.read_text(errors="replace").split()
    if not recorded or len(recorded[0]) != 64:
        raise ChecksumMismatchError(f"unreadable checksum file {sidecar.name}: cannot verify the weights", path)
    if sha256_file(path) != recorded[0].lower():
        raise ChecksumMismatchError(
            f"checksum mismatch: the file's bytes are not those written with it ({sidecar.name}); it was damaged or "
            "replaced after saving. Restore or re-create it (delete the .sha256 file only to load it unverified)",
            path,
        )
    return True


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float as ``None``: JSON has no such numbers (Python's ``json`` would write a
    bare ``NaN`` that strict readers refuse), and an undefined metric reads as ``null``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically write ``obj`` as indented, strict JSON (NaN and infinities as ``null``, see :func:`json_safe`)."""
    text = json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode())


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
    """``torch.load(path, weights_only=True)`` of a file verified against its ``.sha256`` sidecar, with one-line
    errors that name the file.

    Raises:
        ChecksumMismatchError: the file's bytes differ from those recorded when it was written.
        UnsafeCheckpointError: the file holds objects other than tensors and plain containers (arbitrary code could
            run if it were unpickled); it is refused.
        InputError: the file is missing, truncated or not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", path)
    verify_checksum(path)
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
