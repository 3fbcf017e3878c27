"""Read back what ``--tracking mlflow`` left in a bundle's local MLflow store (``eval/mlruns.db``)."""

from __future__ import annotations

from pathlib import Path

import mlflow


def tracked_runs(bundle_root: Path) -> list[dict]:
    """Every run of the bundle's local store: name, status, params, metrics and artifact file names."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{(bundle_root / 'eval' / 'mlruns.db').resolve()}")
    runs = []
    for experiment in client.search_experiments():
        for run in client.search_runs(experiment.experiment_id):
            runs.append(
                {
                    "experiment": experiment.name,
                    "status": run.info.status,
                    "params": run.data.params,
                    "metrics": run.data.metrics,
                    "artifacts": [a.path for a in client.list_artifacts(run.info.run_id)],
                }
            )
    return runs
