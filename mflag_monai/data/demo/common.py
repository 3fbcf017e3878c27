"""What every demo writer shares: the version stamp, folder names, seeded streams and ids, the findings drawn for
one image (:class:`Case`) and the phantom rendering calls, CSV and PNG writing.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .phantom import ChestPhantom, render_chest_xray, render_lateral_xray

__all__ = [
    "DATASET_DIRS",
    "DEMO_VERSION",
    "STREAMS",
    "Case",
    "fmt_label",
    "pick",
    "render_frontal",
    "render_lateral",
    "sample_case",
    "save_png",
    "stream_rng",
    "subseed",
    "to_uint8",
    "uid_2_25",
    "uuid4",
    "write_csv",
]


#: Bump whenever the generated files change, so that cached demo folders are regenerated.
DEMO_VERSION: int = 2


#: Folder of each data set under the demo root (the preparers' names).
DATASET_DIRS: dict[str, str] = {
    "mimic": "mimic-cxr",
    "chexpert": "chexpert",
    "rsna": "rsna-pneumonia",
    "siim": "siim-pneumothorax",
}


# Stream ids, so that each data set draws its own patients from the one seed.
STREAMS = {"mimic": 1, "chexpert": 2, "rsna": 3, "siim": 4, "iu-xray": 11, "chexpert-plus": 12}


def stream_rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, *keys): results don't depend on generation order."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def subseed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**62))


def uid_2_25(rng: np.random.Generator) -> str:
    """A ``2.25.<128-bit integer>`` UID (the UUID-derived form MIMIC-CXR uses)."""
    return f"2.25.{int.from_bytes(rng.bytes(16), 'big')}"


def uuid4(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def fmt_label(value: float | None) -> str:
    """A label as the data sets write it: ``1.0`` / ``0.0`` / ``-1.0`` / blank."""
    return "" if value is None else f"{value:.1f}"


def write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image), mode="L").save(path, format="PNG")


@dataclass
class Case:
    """Findings to draw in one frontal image (phantom arguments) and how the text treats them."""

    cardiomegaly: bool = False
    effusion: tuple[str, ...] = ()
    effusion_size: str = "moderate"
    consolidation: int = 0
    nodule: int = 0
    pneumothorax: tuple[str, ...] = ()
    pneumothorax_size: str = "moderate"
    support_devices: bool = False
    projection: str = "PA"
    hedge: bool = False  # a subtle finding is worded as uncertain

    def phantom_kwargs(self) -> dict[str, Any]:
        return {
            "cardiomegaly": self.cardiomegaly,
            "effusion": self.effusion,
            "effusion_size": self.effusion_size,
            "consolidation": self.consolidation,
            "nodule": self.nodule,
            "pneumothorax": self.pneumothorax,
            "pneumothorax_size": self.pneumothorax_size,
            "support_devices": self.support_devices,
            "projection": self.projection,
        }


def pick(rng: np.random.Generator, options: list | tuple, p: list[float] | None = None) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def _side_choice(rng: np.random.Generator) -> tuple[str, ...]:
    return pick(rng, [("right",), ("left",), ("right", "left")], [0.4, 0.35, 0.25])


def sample_case(rng: np.random.Generator, p: dict[str, float]) -> Case:
    """Draw independent findings with the probabilities ``p`` (keys: cardiomegaly, effusion,
    consolidation, nodule, pneumothorax, devices, ap, hedge)."""
    case = Case()
    case.cardiomegaly = bool(rng.random() < p.get("cardiomegaly", 0.0))
    if rng.random() < p.get("effusion", 0.0):
        case.effusion = _side_choice(rng)
        case.effusion_size = pick(rng, ["small", "moderate", "large"], [0.4, 0.4, 0.2])
    if rng.random() < p.get("consolidation", 0.0):
        case.consolidation = 1 if rng.random() < 0.75 else 2
    if rng.random() < p.get("nodule", 0.0):
        case.nodule = 1 if rng.random() < 0.8 else 2
    if rng.random() < p.get("pneumothorax", 0.0):
        case.pneumothorax = pick(rng, [("right",), ("left",), ("right", "left")], [0.45, 0.4, 0.15])
        case.pneumothorax_size = pick(rng, ["small", "moderate", "large"], [0.4, 0.35, 0.25])
    case.support_devices = bool(rng.random() < p.get("devices", 0.0))
    # Portable AP films: more often with lines and tubes.
    case.projection = "AP" if rng.random() < (0.8 if case.support_devices else p.get("ap", 0.3)) else "PA"
    case.hedge = bool(rng.random() < p.get("hedge", 0.0))
    return case


def render_frontal(seed: int, rows: int, cols: int, case: Case) -> ChestPhantom:
    return render_chest_xray(rows, cols, rng=np.random.default_rng(seed), **case.phantom_kwargs())


def render_lateral(seed: int, rows: int, cols: int) -> np.ndarray:
    return render_lateral_xray(rows, cols, rng=np.random.default_rng(seed))
