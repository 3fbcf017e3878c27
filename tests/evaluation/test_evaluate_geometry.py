"""mflag_monai.evaluation.geometry: the command line that overlays several runs' spectra."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mflag_monai.evaluation.geometry import main
from mflag_monai.utils.plots import plot_spectra


def test_compare_cli_overlays_runs(tmp_path: Path) -> None:
    files = []
    for name, decay in (("a", 0.5), ("b", 0.9)):
        values = (decay ** np.arange(8)).tolist() + [0.0]  # a zero (rank-deficient sample) stays off the log axis
        path = tmp_path / name / "spectrum.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"spectra": {"image_feature": values, "image_proj": values[:4]}}))
        files.append(str(path))
    out = tmp_path / "spectra.png"
    assert main(["compare", *files, "--labels", "M-FLAG", "no orth", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        main(["compare", *files, "--labels", "only one", "--out", str(out)])
    with pytest.raises(SystemExit):
        main(["compare", *files, "--key", "text_proj", "--out", str(out)])  # not in these files
    assert plot_spectra({"x": [1.0, 0.1, 0.01]}, tmp_path / "p.png").is_file()
