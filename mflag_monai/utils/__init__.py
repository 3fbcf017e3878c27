"""Small shared utilities."""

from .io import atomic_torch_save, atomic_write_bytes, atomic_write_json

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_json"]
