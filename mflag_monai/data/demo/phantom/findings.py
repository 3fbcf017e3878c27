"""What a phantom can show and what rendering returns: the sides, zones, sizes and devices arguments name, the
findings drawn and the rendered image with its ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEVICES",
    "SIDES",
    "SIZES",
    "ZONES",
    "ChestPhantom",
    "Consolidation",
    "Nodule",
    "PhantomFindings",
    "check_choice",
    "sides_of",
]


SIDES = ("right", "left")
ZONES = ("upper", "middle", "lower")
SIZES = ("small", "moderate", "large")
#: Support devices that can be drawn: endotracheal tube, enteric (nasogastric) tube,
#: right internal jugular central venous catheter.
DEVICES = ("ett", "enteric", "cvc")


@dataclass
class Consolidation:
    """One focal opacity: where it is and its bounding box ``(x, y, width, height)`` in pixels."""

    side: str
    zone: str
    box: tuple[int, int, int, int]


@dataclass
class Nodule:
    """One pulmonary nodule: where it is, its box ``(x, y, width, height)`` in pixels and its diameter in mm."""

    side: str
    zone: str
    box: tuple[int, int, int, int]
    diameter_mm: int


@dataclass
class PhantomFindings:
    """What a rendered image shows (patient sides, see module docstring)."""

    cardiomegaly: bool = False
    effusion: tuple[str, ...] = ()
    effusion_size: str = "moderate"
    consolidations: list[Consolidation] = field(default_factory=list)
    nodules: list[Nodule] = field(default_factory=list)
    pneumothorax: tuple[str, ...] = ()
    pneumothorax_size: str = "moderate"
    support_devices: tuple[str, ...] = ()

    @property
    def is_normal(self) -> bool:
        """True when no finding is drawn (support devices count as a finding)."""
        return not (
            self.cardiomegaly
            or self.effusion
            or self.consolidations
            or self.nodules
            or self.pneumothorax
            or self.support_devices
        )


@dataclass
class ChestPhantom:
    """A rendered frontal radiograph and its ground truth.

    Attributes:
        image: ``(H, W)`` float32 in ``[0, 1]``, bright = dense.
        boxes: consolidation bounding boxes ``(x, y, width, height)`` in pixels.
        pneumothorax_mask: ``(H, W)`` uint8 0/1, the union of ``pneumothorax_regions``.
        pneumothorax_regions: one ``(H, W)`` uint8 mask per pneumothorax (one per side).
        lung_mask: ``(H, W)`` uint8; 1 = right lung (image left), 2 = left lung, 0 elsewhere.
            It covers the whole pleural space, pneumothorax and effusion included.
        heart_mask: ``(H, W)`` uint8 0/1.
        ctr: cardiothoracic ratio drawn (maximal heart width / maximal inner thoracic width).
        findings: what the image shows.
    """

    image: np.ndarray
    boxes: list[tuple[int, int, int, int]]
    pneumothorax_mask: np.ndarray
    pneumothorax_regions: list[np.ndarray]
    lung_mask: np.ndarray
    heart_mask: np.ndarray
    ctr: float
    findings: PhantomFindings


def sides_of(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise a side argument: None, "left", "right", "both" or a sequence of those."""
    if value is None or value is False:
        return ()
    if isinstance(value, str):
        value = SIDES if value == "both" else (value,)
    out = tuple(dict.fromkeys(value))  # drop duplicates, keep order
    for s in out:
        if s not in SIDES:
            raise ValueError(f"side must be one of {SIDES} or 'both', got {s!r}")
    return out


def check_choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value
