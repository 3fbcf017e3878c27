"""Strict JSON from the writers: an undefined metric is ``null``, never a bare ``NaN``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mflag_monai.utils.io import atomic_write_json


def test_non_finite_numbers_are_written_as_null(tmp_path: Path) -> None:
    path = atomic_write_json(
        {"auroc": {"Atelectasis": math.nan, "Cardiomegaly": 0.75}, "loss": [math.inf, -math.inf, 1.5], "n": 3},
        tmp_path / "metrics.json",
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    data = json.loads(text, parse_constant=refuse)  # a strict reader
    assert data == {"auroc": {"Atelectasis": None, "Cardiomegaly": 0.75}, "loss": [None, None, 1.5], "n": 3}
