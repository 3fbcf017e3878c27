"""mflag_monai.data.list_images: a folder of inputs lists every image file the loader reads, nothing else."""

from __future__ import annotations

from pathlib import Path

from mflag_monai.data import list_images


def test_folder_listing_follows_the_loaders_suffixes(tmp_path: Path) -> None:
    for name in ("a.dcm", "b.PNG", "sub/c.tif", "notes.txt", "no_suffix"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [Path(e["image"]).name for e in list_images(tmp_path)] == ["a.dcm", "b.PNG", "c.tif"]
