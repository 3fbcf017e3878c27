"""mflag_monai.handlers.tracking: hyper-parameters and result files handed to the MLflow handlers of its engine."""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler

from mflag_monai.handlers.tracking import TrackingExtras, literal_params


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
