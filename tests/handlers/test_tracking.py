"""mflag_monai.handlers.tracking: hyper-parameters, result files and model files handed to the MLflow handlers of its
engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.handlers import MLFlowHandler

from helpers.mlflow_store import tracked_runs
from mflag_monai.handlers.tracking import MODEL_FILES, TrackingExtras, literal_params


def mlflow_handler() -> MLFlowHandler:
    """An MLflow handler as ``--tracking mlflow`` makes one, without a tracking server (its ``start`` never runs)."""
    handler = MLFlowHandler.__new__(MLFlowHandler)
    handler.experiment_param, handler.artifacts, handler.output_transform = None, ("config.json",), None
    return handler


def test_only_the_mlflow_handlers_of_its_own_engine_are_given_the_extras() -> None:
    engine, other = Engine(lambda e, b: None), Engine(lambda e, b: None)
    extras = TrackingExtras(artifacts=["eval/metrics.json"], params={"lr": 0.1}, iteration_output_transform=float)
    extras.attach(engine)
    mine, theirs = mlflow_handler(), mlflow_handler()
    engine.add_event_handler(Events.STARTED, mine.start)  # what MLFlowHandler.attach registers
    other.add_event_handler(Events.STARTED, theirs.start)
    extras._on_started(engine)
    assert mine.experiment_param == {"lr": 0.1} and mine.output_transform is float
    assert mine.artifacts == ("config.json", "eval/metrics.json")
    assert theirs.experiment_param is None and theirs.artifacts == ("config.json",)


def test_literal_params_leave_out_expressions_references_and_components() -> None:
    config = {
        "imports": ["$import os"],
        "lr": 1e-3,
        "names": ["a", "b"],
        "path": "$os.getcwd()",
        "net": "@network",
        "network": {"_target_": "X"},
        "_meta_": 1,
        "amp": True,
    }
    assert literal_params(config) == {"lr": 1e-3, "names": ["a", "b"], "amp": True}


# ------------------------------------------------------------------------------------------------ model files


def trainer(max_epochs: int = 1) -> SupervisedTrainer:
    """A MONAI trainer of a one-layer network on two batches (what the bundles' trainers derive from)."""
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    data = [{"image": torch.randn(3), "label": torch.randn(1)} for _ in range(4)]
    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=torch.utils.data.DataLoader(data, batch_size=2),
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.1),
        loss_function=torch.nn.MSELoss(),
    )


def executed_config(models: Path) -> Path:
    """A config as ``--tracking`` saves it: into the bundle's output_dir (``models/``), expressions unresolved."""
    models.mkdir(parents=True, exist_ok=True)
    path = models / "config_20250101_000000.json"
    path.write_text(json.dumps({"imports": ["$import os"], "learning_rate": 0.1, "net": {"_target_": "X"}}))
    return path


def test_a_trainer_hands_its_model_files_and_an_evaluator_none(tmp_path: Path) -> None:
    config = str(executed_config(tmp_path / "models"))
    evaluator = Engine(lambda e, b: None)
    for engine, expected in ((trainer(), [str(tmp_path / "models" / n) for n in MODEL_FILES]), (evaluator, [])):
        handler, extras = mlflow_handler(), TrackingExtras(artifacts=["eval/metrics.json"])
        handler.artifacts = (config,)
        extras.attach(engine)
        engine.add_event_handler(Events.STARTED, handler.start)
        extras._on_started(engine)
        assert handler.artifacts == (config, "eval/metrics.json", *expected)
        assert handler.experiment_param == {"learning_rate": 0.1}
    assert MODEL_FILES == ("model.pt", "model.pt.sha256", "model.json")


@pytest.mark.parametrize("model_files", [[], ["elsewhere/weights.pt"]])
def test_model_files_can_be_named_or_turned_off(tmp_path: Path, model_files: list[str]) -> None:
    engine, handler, extras = trainer(), mlflow_handler(), TrackingExtras(model_files=model_files)
    handler.artifacts = (str(executed_config(tmp_path / "models")),)
    extras.attach(engine)
    engine.add_event_handler(Events.STARTED, handler.start)
    extras._on_started(engine)
    assert handler.artifacts[1:] == tuple(model_files)


def test_a_tracked_training_run_logs_its_model_files(tmp_path: Path) -> None:
    """A real MLflow run (local SQLite store, MONAI's trainer handler as ``--tracking mlflow`` configures it): the
    model written during training, its checksum sidecar and its record are among the run's artifacts, byte for byte,
    beside the executed config; the config's literal settings are the run's parameters."""
    import mlflow
    from monai.handlers import from_engine
    from monai.utils import path_to_sqlite_uri

    from mflag_monai.utils import atomic_torch_save, atomic_write_json

    models = tmp_path / "models"
    config = executed_config(models)
    engine = trainer(max_epochs=2)
    TrackingExtras().attach(engine)

    @engine.on(Events.EPOCH_COMPLETED)
    def save_best(engine: Engine) -> None:  # what the bundles' best-model saver writes
        atomic_torch_save(engine.network.state_dict(), models / "model.pt")
        atomic_write_json({"epoch": engine.state.epoch}, models / "model.json")

    MLFlowHandler(  # DEFAULT_EXP_MGMT_SETTINGS["mlflow"]'s trainer handler, appended after the bundle's handlers
        tracking_uri=path_to_sqlite_uri(str(tmp_path / "eval" / "mlruns.db")),
        experiment_name="tracking_test",
        artifacts=str(config),
        tag_name="train_loss",
        output_transform=from_engine(["loss"], first=True),
        close_on_complete=True,
    ).attach(engine)
    engine.run()

    (run,) = tracked_runs(tmp_path)
    assert run["status"] == "FINISHED" and run["params"]["learning_rate"] == "0.1" and "train_loss" in run["metrics"]
    assert {config.name, *MODEL_FILES} <= set(run["artifacts"])
    client = mlflow.MlflowClient(tracking_uri=path_to_sqlite_uri(str(tmp_path / "eval" / "mlruns.db")))
    run_id = client.search_runs(client.get_experiment_by_name("tracking_test").experiment_id)[0].info.run_id
    for name in MODEL_FILES:
        logged = Path(client.download_artifacts(run_id, name, str(tmp_path / "downloaded")))
        assert logged.read_bytes() == (models / name).read_bytes(), name
