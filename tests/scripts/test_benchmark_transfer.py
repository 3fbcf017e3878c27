"""scripts/benchmark_transfer.py: the table, the plot, and the reuse of finished runs (the end-to-end run is the
script's own job: it takes minutes even at --quick, see docs/results/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiny_bundles import load_script

REPO = Path(__file__).resolve().parents[2]
bt = load_script(REPO / "scripts" / "benchmark_transfer.py")  # not via sys.path: scripts/monailabel would shadow

RESULTS = {
    "fractions": [0.01, 0.1, 1.0],
    "scores": {
        "classification": {"random": {"0.01": 0.5, "0.1": 0.6, "1.0": 0.7}, "mflag": {"0.01": 0.55, "1.0": 0.8}},
        "detection": {"random": {"0.01": 0.01, "0.1": 0.02, "1.0": 0.03}},
    },
}


def test_markdown_table_has_a_row_per_task_and_encoder() -> None:
    lines = bt.markdown_table(RESULTS).splitlines()
    assert lines[0] == "| task (metric) | encoder | 1% of labels | 10% of labels | 100% of labels |"
    assert "| classification (mean AUROC) | mflag | 0.550 | – | 0.800 |" in lines  # a missing run shows as a dash
    assert "| detection (mAP@[.40:.75]) | random | 0.010 | 0.020 | 0.030 |" in lines
    assert len(lines) == 2 + 3


def test_plot_is_written(tmp_path: Path) -> None:
    bt.plot_transfer(RESULTS, tmp_path / "transfer.png")
    assert (tmp_path / "transfer.png").stat().st_size > 5000


def test_finished_runs_are_reused_not_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "segmentation-random-0.1" / "eval" / "metrics.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"metrics": {"val_dice": 0.42}}))
    monkeypatch.setattr(bt, "run_bundle", lambda *a, **k: pytest.fail("a finished run was started again"))
    value = bt.downstream("segmentation", "random", 0.1, tmp_path, {}, bt.demo_sizes(quick=True), tmp_path, {}, fresh=False)
    assert value == 0.42


def test_unknown_dataset_names_are_refused() -> None:
    with pytest.raises(SystemExit):
        bt.main(["--dataset", "ct=/data/ct", "--out", "/nonexistent"])
