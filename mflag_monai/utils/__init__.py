"""Small shared utilities."""

from .dist import is_distributed, rank, rank_zero_first
from .errors import InputError, concise_errors
from .io import (
    ChecksumMismatchError,
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    require_file,
    require_writable,
    safe_torch_load,
    verify_checksum,
)

__all__ = [
    "ChecksumMismatchError",
    "InputError",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "concise_errors",
    "is_distributed",
    "rank",
    "rank_zero_first",
    "require_file",
    "require_writable",
    "safe_torch_load",
    "verify_checksum",
]
