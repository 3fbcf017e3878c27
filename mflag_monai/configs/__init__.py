"""Config fragments the bundles share, and the copies each bundle folder carries.

A bundle folder must stand alone (MONAI Label and the model zoo take one at a time), so a bundle cannot include a file
from the package at run time. What the three downstream ``train.yaml`` share is written once here
(``downstream_train.yaml``, named fragments) and copied into each between ``# >>> shared: <name>`` and
``# <<< shared: <name>`` lines: :func:`sync_fragments` writes the copies (``scripts/sync_bundle_configs.py``),
:func:`stale_fragments` tells which differ (the test suite checks that none do).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["DOWNSTREAM_BUNDLES", "FRAGMENT_FILE", "read_fragments", "stale_fragments", "sync_fragments"]

#: The bundles whose ``configs/train.yaml`` carry the downstream fragments.
DOWNSTREAM_BUNDLES = ("classification", "segmentation", "detection")
FRAGMENT_FILE = Path(__file__).with_name("downstream_train.yaml")

_BEGIN = re.compile(r"^(?P<indent> *)# >>> shared: (?P<name>[\w-]+)\b.*$")
_NOTE = "(generated from mflag_monai/configs/downstream_train.yaml by scripts/sync_bundle_configs.py: edit there)"


def read_fragments(path: str | os.PathLike = FRAGMENT_FILE) -> dict[str, str]:
    """``{name: text}`` of the fragments in ``path``, in order; each text ends with a newline."""
    return {name: body for name, _, body in _spans(Path(path).read_text(), path)}


def _spans(text: str, source: str | os.PathLike) -> list[tuple[str, str, str]]:
    """``(name, indent, body)`` of every fenced fragment in ``text``."""
    lines = text.splitlines(keepends=True)
    spans, i = [], 0
    while i < len(lines):
        match = _BEGIN.match(lines[i].rstrip("\n"))
        i += 1
        if not match:
            continue
        name, indent = match["name"], match["indent"]
        end = f"{indent}# <<< shared: {name}"
        body = []
        while i < len(lines) and lines[i].rstrip("\n") != end:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{source}: fragment {name!r} has no closing line {end.strip()!r}")
        i += 1
        spans.append((name, indent, "".join(body)))
    return spans


def _render(text: str, fragments: dict[str, str], source: str | os.PathLike) -> str:
    """``text`` with the body of every fenced fragment replaced by ``fragments[name]``."""
    known = {name for name, _, _ in _spans(text, source)}
    unknown = known - set(fragments)
    if unknown:
        raise ValueError(f"{source}: unknown shared fragment(s) {sorted(unknown)}; known: {sorted(fragments)}")
    out, lines, i = [], text.splitlines(keepends=True), 0
    while i < len(lines):
        match = _BEGIN.match(lines[i].rstrip("\n"))
        if not match:
            out.append(lines[i])
            i += 1
            continue
        name, indent = match["name"], match["indent"]
        out.append(f"{indent}# >>> shared: {name} {_NOTE}\n")
        out.append(fragments[name])
        end = f"{indent}# <<< shared: {name}"
        while lines[i].rstrip("\n") != end:
            i += 1
        out.append(lines[i])
        i += 1
    return "".join(out)


def stale_fragments(bundles_dir: str | os.PathLike) -> dict[str, list[str]]:
    """``{train.yaml path: [problems]}`` for every downstream ``train.yaml`` whose copies differ from the package's or
    that lacks a fragment; empty when all are current."""
    fragments = read_fragments()
    problems: dict[str, list[str]] = {}
    for bundle in DOWNSTREAM_BUNDLES:
        path = Path(bundles_dir) / bundle / "configs" / "train.yaml"
        text = path.read_text()
        found = {name: body for name, _, body in _spans(text, path)}
        issues = [f"missing fragment {n!r}" for n in fragments if n not in found]
        issues += [f"fragment {n!r} differs" for n, body in found.items() if fragments.get(n) != body]
        if not issues and _render(text, fragments, path) != text:
            issues.append("a fence line differs")
        if issues:
            problems[str(path)] = issues
    return problems


def sync_fragments(bundles_dir: str | os.PathLike) -> list[Path]:
    """Write the package's fragments into every downstream ``train.yaml``; return the files that changed."""
    fragments = read_fragments()
    changed = []
    for bundle in DOWNSTREAM_BUNDLES:
        path = Path(bundles_dir) / bundle / "configs" / "train.yaml"
        text = path.read_text()
        new = _render(text, fragments, path)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
