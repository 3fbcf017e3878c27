"""A small registry of dataset preparers: each turns a dataset's official layout into a MONAI datalist."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PREPARERS", "PreparedDatalist", "get_preparer", "register_preparer", "walk_files"]


def walk_files(root: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Every file under ``root``, symlinked folders followed (``Path.rglob`` does not enter them, and datasets are
    often linked in from another disk), each real folder visited once; sorted per folder. ``suffix`` (e.g.
    ``".dcm"``, any case) keeps only those files."""
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            if suffix is None or name.lower().endswith(suffix.lower()):
                yield Path(folder) / name


@dataclass
class PreparedDatalist:
    """A MONAI datalist (``{"training": [...], "validation": [...], "test": [...]}``) and a summary of what was kept."""

    datalist: dict[str, list[dict]]
    summary: dict[str, int | str] = field(default_factory=dict)
    run_info: dict[str, int | str] = field(default_factory=dict)  # about this run (e.g. masks written), not the data

    def to_json(self) -> dict:
        """The datalist file's content: the splits plus the summary under ``"summary"``.

        ``run_info`` is left out so that the same data, seed and fraction always give the same file, byte for byte.
        """
        return {**self.datalist, "summary": self.summary}

    def format_summary(self) -> str:
        """One line per summary and run-info entry, for the command line."""
        entries = {**self.summary, **self.run_info}
        width = max((len(k) for k in entries), default=0)
        return "\n".join(f"  {k:<{width}}  {v}" for k, v in entries.items())


PREPARERS: dict[str, Callable[..., PreparedDatalist]] = {}


def register_preparer(name: str) -> Callable[[Callable[..., PreparedDatalist]], Callable[..., PreparedDatalist]]:
    """Decorator registering a preparer under ``name`` for ``prepare NAME``.

    A preparer is called as ``fn(root, *, out=None, fraction=1.0, seed=42, **options) -> PreparedDatalist``:
    ``out`` is the datalist path being written (preparers that write files, such as masks, put them beside it),
    ``fraction`` the stratified share of the training split to keep, ``seed`` the seed of every random split.
    """

    def wrap(fn: Callable[..., PreparedDatalist]) -> Callable[..., PreparedDatalist]:
        PREPARERS[name] = fn
        return fn

    return wrap


def get_preparer(name: str) -> Callable[..., PreparedDatalist]:
    """The preparer registered under ``name``."""
    if name not in PREPARERS:
        from ...utils.errors import InputError

        raise InputError(f"unknown dataset {name!r}; known: {', '.join(sorted(PREPARERS))}", "--dataset")
    return PREPARERS[name]
