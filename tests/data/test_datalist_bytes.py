"""The same seed and fraction give the same datalist file, byte for byte; another seed gives another draw."""

from __future__ import annotations

from pathlib import Path

from mflag_monai.data import get_preparer
from mflag_monai.utils import atomic_write_json


def test_same_seed_and_fraction_same_bytes(demo_data, tmp_path: Path) -> None:
    demo = demo_data(40, 64)
    files = []
    for name, seed in (("a", 42), ("b", 42), ("c", 7)):
        out = tmp_path / f"{name}.json"
        prepared = get_preparer("siim-pneumothorax")(
            demo / "siim-pneumothorax", out=out, fraction=0.5, seed=seed, masks_dir=tmp_path / "masks"
        )
        atomic_write_json(prepared.to_json(), out)
        files.append(out.read_bytes())
    assert files[0] == files[1]
    assert files[0] != files[2]
