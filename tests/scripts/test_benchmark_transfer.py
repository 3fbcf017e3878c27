"""scripts/benchmark_transfer.py: the probe, the statistics, the tables, the plot, the reuse of finished runs and the
command-line guards (the end-to-end run is the script's own job: it takes minutes even at --quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.bundles import load_script

REPO = Path(__file__).resolve().parents[2]
bt = load_script(REPO / "scripts" / "benchmark_transfer.py")  # by file location: no sys.path edit


def _cell(mean: float, std: float) -> dict:
    return {"mean": mean, "std": std, "values": [mean - std, mean + std]}


RESULTS = {
    "fractions": [0.01, 0.1],
    "metrics": {"classification": "mean AUROC", "detection": "mAP@[.40:.75]"},
    "scores": {
        "classification": {
            "random": {"0.01": _cell(0.5, 0.01), "0.1": _cell(0.6, 0.02)},
            "mflag": {"0.1": _cell(0.7, 0.03)},
        },
        "detection": {"random": {"0.01": _cell(0.01, 0.0), "0.1": _cell(0.02, 0.01)}},
    },
}


def test_summary_is_mean_and_population_std_over_seeds() -> None:
    s = bt.summarise([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7)
    assert s["std"] == pytest.approx((0.08 / 3) ** 0.5, abs=1e-4)
    assert s["values"] == [0.5, 0.7, 0.9]


def test_markdown_table_has_a_row_per_task_and_encoder_with_spread() -> None:
    lines = bt.markdown_tables(RESULTS).splitlines()
    assert lines[0] == "| task (metric) | encoder | 1% of labels | 10% of labels |"
    assert "| classification (mean AUROC) | mflag | – | 0.700 ± 0.030 |" in lines  # a missing cell shows as a dash
    assert "| detection (mAP@[.40:.75]) | random | 0.010 ± 0.000 | 0.020 ± 0.010 |" in lines
    assert len(lines) == 2 + 3


def test_plot_with_error_bars_is_written(tmp_path: Path) -> None:
    bt.plot_transfer(RESULTS, tmp_path / "transfer.png")
    assert (tmp_path / "transfer.png").stat().st_size > 5000


def test_linear_probe_separates_what_is_linearly_separable_and_not_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g, dtype=torch.float64)
    y = torch.stack([(x[:, 0] > 0), (x[:, 1] + x[:, 2] > 0)], 1).double()
    noise = torch.randn(200, 8, generator=g, dtype=torch.float64)
    names = ["a", "b"]
    features = {str(i): x[i] for i in range(200)}
    noise_features = {str(i): noise[i] for i in range(200)}
    entries = [{"image": str(i), "label": y[i].tolist()} for i in range(200)]
    splits = {"training": entries[:100], "validation": entries[100:140], "test": entries[140:]}
    assert bt.probe_score(features, splits, names) > 0.95
    assert bt.probe_score(noise_features, splits, names) < 0.7


def test_overrides_are_parsed_to_python_values() -> None:
    parsed = bt._parse_overrides(["--epochs", "12", "--learning_rate", "2e-4", "--amp", "true", "--dataset", "x"])
    assert parsed == {"epochs": 12, "learning_rate": 2e-4, "amp": True, "dataset": "x"}


def test_finished_runs_are_reused_not_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "segmentation-random-0.1-seed0"
    (root / "eval").mkdir(parents=True)
    (root / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"val_dice": 0.42}}))
    (root / bt.DONE).write_text("{}")
    monkeypatch.setattr(bt, "run_bundle_here", lambda *a, **k: pytest.fail("a finished run was started again"))
    value = bt.downstream_bundle(
        "segmentation", "random", 0.1, 0, tmp_path, None, bt.quick_design(), tmp_path, fresh=False
    )
    assert value == 0.42


def test_an_interrupted_run_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "detection-mflag-0.01-seed1"
    (root / "eval").mkdir(parents=True)
    (root / "eval" / "metrics.json").write_text(json.dumps({"mAP": 0.1}))  # stale: no completion marker
    calls = []
    monkeypatch.setattr(bt, "run_bundle_here", lambda task, run_id, *a, **k: calls.append(run_id))
    bt.downstream_bundle("detection", "mflag", 0.01, 1, tmp_path, "enc.pt", bt.quick_design(), tmp_path, fresh=False)
    assert calls == ["training", "evaluating"]


def test_the_default_design_keeps_the_corpus_large_and_the_batch_exact() -> None:
    design = bt.cpu_design()
    args = dict(zip(design.pretrain[::2], design.pretrain[1::2]))
    assert int(args["--batch_size"]) >= 256 and int(args["--micro_batch_size"]) < int(args["--batch_size"])


def test_protocol_without_weights_or_text_model_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bt.main(["--protocol", "--out", "/nonexistent"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--pretrained-image-weights and --text-model" in err


def test_protocol_uses_the_papers_settings(tmp_path: Path) -> None:
    design = bt.protocol_design(str(tmp_path / "w.pth"), str(tmp_path / "cxr-bert"))
    args = dict(zip(design.pretrain[::2], design.pretrain[1::2]))
    assert args["--learning_rate"] == "2e-5" and args["--batch_size"] == "512" and args["--epochs"] == "50"
    assert args["--image_size"] == "224" and args["--resize"] == "256" and args["--amp"] == "true"
    assert design.depth == 50 and "--fpn_channels" in design.downstream["detection"]


def test_unknown_dataset_names_are_refused() -> None:
    with pytest.raises(SystemExit):
        bt.main(["--dataset", "ct=/data/ct", "--out", "/nonexistent"])
