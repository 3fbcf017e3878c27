"""scripts/benchmark_transfer.py: the probe, the statistics, the tables, the plot, the reuse of finished runs and the
command-line guards (the end-to-end run is the script's own job: it takes minutes even at --quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.bundles import load_script
from mflag_monai.protocol import DOWNSTREAM_PROTOCOL

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


def test_per_label_table_at_the_largest_fraction() -> None:
    per_label = {
        "random": {"0.1": {"Edema": _cell(0.61, 0.01), "Cardiomegaly": _cell(0.9, 0.02)}},
        "mflag": {"0.1": {"Edema": _cell(0.55, 0.01), "Cardiomegaly": _cell(0.7, 0.02)}},
    }
    lines = bt.markdown_tables({**RESULTS, "per_label": {"classification": per_label}}).splitlines()
    assert "| encoder | Edema | Cardiomegaly |" in lines
    assert "| random | 0.610 | 0.900 |" in lines and "| mflag | 0.550 | 0.700 |" in lines


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


def test_settings_become_bundle_options() -> None:
    options = bt.cli_options({"epochs": 12, "learning_rate": 2e-4, "amp": True, "freeze_text_projector": False})
    assert options == [
        "--epochs",
        "12",
        "--learning_rate",
        "0.0002",
        "--amp",
        "true",
        "--freeze_text_projector",
        "false",
    ]


def test_each_encoder_row_sets_its_variant_and_its_objectives_learning_rate() -> None:
    design = bt.cpu_design(learning_rates={"infonce": 1e-3, "mflag": 2e-3})
    infonce = design.pretrain_settings("infonce")
    assert infonce["objective"] == "infonce" and infonce["learning_rate"] == 1e-3
    assert infonce["epochs"] == design.pretrain_epochs and infonce["image_depth"] == design.depth
    assert design.pretrain_settings("mflag-no-orth", epochs=3)["orth_weight"] == 0.0
    assert design.pretrain_settings("mflag-no-orth", epochs=3)["epochs"] == 3
    assert design.pretrain_settings("mflag-orth-proj")["orth_feature"] == "image_proj"
    frozen = design.pretrain_settings("mflag-frozen-text")
    assert frozen["freeze_text_projector"] is True and frozen["learning_rate"] == 2e-3
    assert frozen["max_rotation_deg"] == infonce["max_rotation_deg"]  # every row pre-trains on the same design
    assert set(bt.ENCODERS) == {"random", *bt.VARIANTS}


def test_learning_rates_per_objective_from_the_command_line() -> None:
    args, parser = bt.parse_args(["--lr", "infonce=5e-4", "--pretrain-batch", "256"])
    design = bt.make_design(args, parser)
    assert design.learning_rates["infonce"] == 5e-4 and design.learning_rates["mflag"] == 1e-3
    assert design.pretrain["batch_size"] == 256 and design.pretrain["micro_batch_size"] == 128
    for bad in ("simclr=1e-3", "infonce=fast"):
        args, parser = bt.parse_args(["--lr", bad])
        with pytest.raises(SystemExit):
            bt.make_design(args, parser)


def test_device_cuda_picks_the_gpu_design_and_epochs_override_any_design() -> None:
    args, parser = bt.parse_args(["--device", "cuda"])
    design = bt.make_design(args, parser)
    assert (design.device, design.image_size, design.resize, design.demo_image_size) == ("cuda", 224, 256, 256)
    assert design.pretrain["amp"] is True and design.pretrain_epochs == 24
    assert design.downstream_settings("segmentation", 0.1)["image_size"] == 224
    cpu = bt.make_design(*bt.parse_args([]))
    assert (cpu.device, cpu.image_size, cpu.pretrain_epochs) == ("cpu", 64, bt.DEFAULT_EPOCHS)
    assert bt.make_design(*bt.parse_args(["--quick", "--pretrain-epochs", "3"])).pretrain_epochs == 3


def test_downstream_settings_add_the_1pct_extras_only_at_1pct(tmp_path: Path) -> None:
    design = bt.protocol_design(str(tmp_path / "w.pth"), str(tmp_path / "cxr-bert"))
    assert design.downstream_settings("detection", 0.01)["learning_rate"] == 2e-4
    assert (
        design.downstream_settings("detection", 0.1)["learning_rate"]
        == DOWNSTREAM_PROTOCOL["detection"]["learning_rate"]
    )
    assert design.downstream_settings("segmentation", 0.1)["image_depth"] == 50


def test_curves_plot_is_written(tmp_path: Path) -> None:
    point = {"steps": 100, "probe_10pct": _cell(0.7, 0.01), "R@5": _cell(0.06, 0.01)}
    sweep = {"random": _cell(0.64, 0.01), "chance_R@5": 0.0175,
             "objectives": {"infonce": [point, {**point, "steps": 200}], "mflag": [point]}}  # fmt: skip
    bt.plot_curves(sweep, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 5000


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


def test_the_default_design_runs_one_cosine_cycle_over_every_step() -> None:
    from mflag_monai.engines import paper_restart_period

    design = bt.cpu_design()
    settings = design.pretrain_settings("infonce")
    corpus = 2309  # training pairs of the default demo corpus
    steps = settings["epochs"] * (corpus // settings["batch_size"])
    assert steps >= 250  # enough steps from random weights for the positive control to learn
    period = paper_restart_period(settings["epochs"], corpus, settings["batch_size"], settings["restart_fraction"])
    assert period == steps  # T_0 of CosineAnnealingWarmRestarts: no restart before the end


def test_protocol_without_weights_or_text_model_is_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bt.main(["--protocol", "--out", "/nonexistent"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--pretrained-image-weights and --text-model" in err


def test_protocol_uses_the_papers_settings(tmp_path: Path) -> None:
    design = bt.protocol_design(str(tmp_path / "w.pth"), str(tmp_path / "cxr-bert"))
    settings = design.pretrain_settings("mflag")
    assert settings["learning_rate"] == 2e-5 and settings["batch_size"] == 512 and settings["epochs"] == 50
    assert settings["image_size"] == 224 and settings["resize"] == 256 and settings["amp"] is True
    assert design.depth == 50 and "fpn_channels" in design.downstream["detection"]


def test_unknown_dataset_names_are_refused() -> None:
    with pytest.raises(SystemExit):
        bt.main(["--dataset", "ct=/data/ct", "--out", "/nonexistent"])


def test_positive_control_verdict_needs_both_margins() -> None:
    random = {"mean": 0.65, "std": 0.01}
    chance = 0.0175
    good = bt.control_verdict({"mean": 0.72, "std": 0.01}, random, {"mean": 0.06}, chance)
    assert good["passes"] and good["probe_margin_sigma"] == pytest.approx(4.95, abs=0.01)
    assert not bt.control_verdict({"mean": 0.67, "std": 0.01}, random, {"mean": 0.06}, chance)["passes"]  # 1.4 σ
    assert not bt.control_verdict({"mean": 0.72, "std": 0.01}, random, {"mean": 0.05}, chance)["passes"]  # < 3x


def test_sweeps_run_in_parts_add_up(tmp_path: Path) -> None:
    point = {"steps": 100, "probe_10pct": _cell(0.7, 0.01), "R@5": _cell(0.06, 0.01)}
    earlier = {"design": {"seeds": [0, 1, 2]},
               "sweep": {"objectives": {"infonce": [{**point, "epochs": 4}, {**point, "epochs": 8}]}}}  # fmt: skip
    (tmp_path / "sweep.json").write_text(json.dumps(earlier))
    new = {"mflag": [{**point, "epochs": 8}], "infonce": [{**point, "epochs": 8, "steps": 288}]}
    merged = bt.merge_sweeps(tmp_path / "sweep.json", new, [0, 1, 2])
    assert [p["epochs"] for p in merged["infonce"]] == [4, 8] and merged["infonce"][1]["steps"] == 288
    assert [p["epochs"] for p in merged["mflag"]] == [8]
    assert bt.merge_sweeps(tmp_path / "sweep.json", new, [0]) == new  # other seeds: not the same experiment
