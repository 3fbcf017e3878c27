"""python -m mflag_monai.utils.numerics: the fp32-vs-float64 check, and the premise of the suite's references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mflag_monai.utils import numerics


def test_the_suites_reference_agrees_with_float64_on_this_cpu() -> None:
    """The tests that compare numerical paths run with oneDNN off (tests/helpers/numerics.py); that is only a
    reference if it agrees with float64 here, whatever oneDNN does on this CPU."""
    for draw in ((0, 1), (1, 0)):  # (0, 1) is the draw that showed oneDNN's error on an AMD EPYC
        rows = numerics.fp32_gradient_errors(model_seed=draw[0], data_seed=draw[1])
        by_path = {(r.path, r.onednn): r for r in rows}
        assert by_path["one pass", False].weight_gradient < 1e-4, by_path["one pass", False]
        assert by_path["one image at a time", True].weight_gradient < 1e-4  # one image: exact with oneDNN too


def test_check_prints_both_errors_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert numerics.main(["--draws", "1", "--json", str(tmp_path / "n.json")]) == 0
    out = capsys.readouterr().out
    assert f"CPU: {numerics.cpu_model()}" in out
    assert "| one pass            |     on |" in out and "| one pass            |    off |" in out
    assert "| one image at a time |     on |" in out
    saved = json.loads((tmp_path / "n.json").read_text())
    assert [(e["path"], e["onednn"]) for e in saved["errors"]] == [
        ("one pass", True),
        ("one image at a time", True),
        ("one pass", False),
    ]
    assert all(e["weight_gradient"] >= 0 for e in saved["errors"])


def test_bad_options_are_refused() -> None:
    with pytest.raises(SystemExit):
        numerics.main(["--batch-size", "1"])
    with pytest.raises(SystemExit):
        numerics.main(["--draws", "0"])
