"""The demo SIIM-ACR Pneumothorax: a DICOM tree (study/series/instance) and ``train-rle.csv`` (one run-length
encoded mask row per pneumothorax region, ``-1`` for none)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..prepare.rle import EMPTY_RLE, rle_encode
from .common import DATASET_DIRS, STREAMS, Case, pick, render_frontal, sample_case, stream_rng, to_uint8, uuid4
from .dicom_writer import CR_SOP_CLASS, UID_ROOT, save_dicom
from .square import SquareImage, plan_square, quota, square_header

__all__ = ["SIIM_HEADER", "plan_siim", "write_siim"]


SIIM_HEADER = "ImageId, EncodedPixels"


def plan_siim(seed: int, count: int, image_size: int) -> list[SquareImage]:
    quota_rng = stream_rng(seed, STREAMS["siim"], 0)
    positive = quota(quota_rng, count, 0.35)
    # About a quarter of the positive images have two regions (bilateral): several CSV rows.
    two_regions = np.zeros(count, dtype=bool)
    two_regions[np.flatnonzero(positive)] = quota(quota_rng, int(positive.sum()), 0.25)

    def make_case(rng: np.random.Generator, i: int) -> tuple[Case, str]:
        case = sample_case(rng, {"cardiomegaly": 0.1, "effusion": 0.1, "devices": 0.15, "ap": 0.3})
        if positive[i]:
            case.pneumothorax = ("right", "left") if two_regions[i] else pick(rng, [("right",), ("left",)])
            case.effusion = ()  # keep the air region free of fluid
            case.pneumothorax_size = pick(rng, ["small", "moderate", "large"], [0.4, 0.35, 0.25])
            return case, "positive"
        return case, "negative"

    def uids(rng: np.random.Generator, i: int) -> tuple[str, ...]:
        # Dotted UIDs shaped like the challenge's (root.1.<kind>.<site>.<n>.<time>.<rand>).
        n, t = 1000 + 7 * i + int(rng.integers(0, 7)), 1517875000 + 13 * i + int(rng.integers(0, 13))
        tail = f"{n}.{t}.{int(rng.integers(100000, 999999))}"
        study, series, sop = (f"{UID_ROOT}.1.{k}.8323329.{tail}" for k in (2, 3, 4))
        return sop, uuid4(rng), study, series, sop

    return plan_square(seed, "siim", count, make_case, uids)


def write_siim(root: Path, plan: list[SquareImage], image_size: int, bar: tqdm) -> dict[str, int]:
    out = root / DATASET_DIRS["siim"]
    lines = [SIIM_HEADER]
    counts: Counter = Counter()
    for item in plan:
        phantom = render_frontal(item.seed, image_size, image_size, item.case)
        header = square_header(item, image_size, 0.168 * 1024 / image_size, f"view: {item.case.projection}")
        path = out / "dicom-images-train" / item.study_uid / item.series_uid / f"{item.image_id}.dcm"
        save_dicom(path, to_uint8(phantom.image), header, CR_SOP_CLASS, item.sop_uid)
        regions = [r for r in phantom.pneumothorax_regions if r.any()]
        # One row per region, "-1" for none; the real file writes ", " between the columns.
        for rle in [rle_encode(r) for r in regions] or [EMPTY_RLE]:
            lines.append(f"{item.image_id}, {rle}")
        counts["images"] += 1
        counts["positive images" if regions else "negative images"] += 1
        counts["regions"] += len(regions)
        counts["images with 2 regions"] += len(regions) == 2
        bar.update()
    (out / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return dict(sorted(counts.items()))
