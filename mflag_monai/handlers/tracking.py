"""What ``--tracking mlflow`` records beyond MONAI's defaults: the bundle's hyper-parameters and its result files.

``python -m monai.bundle run ... --tracking mlflow`` appends MONAI's ``MLFlowHandler`` to ``train#handlers`` and
``validate#handlers`` (or ``handlers`` of an evaluation). Out of the box that handler logs the losses, the epoch
metrics, ``max_epochs``/``epoch_length`` and the executed config as an artifact, but no hyper-parameters and none of
the files a bundle writes (metrics JSON, plots) and not the trained model. :class:`TrackingExtras` fills those in:
declared in a bundle's handler list, it finds the MLflow handlers attached to the same engine when the run starts,
gives them the config's literal top-level values as run parameters, and adds the bundle's result files and, for a
training run, the model files (``models/model.pt``, its ``.sha256`` and ``model.json``) to their artifacts, which
MONAI's handler logs when the engine completes. Without tracking it does nothing.

Report texts never reach MLflow through it: only literal config values are logged (never a datalist), and the
artifacts are the files the bundle names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.engines import Trainer

__all__ = ["MODEL_FILES", "TrackingExtras", "literal_params"]

logger = logging.getLogger(__name__)

# MLflow limits a parameter value to 6000 characters; hyper-parameters are far shorter, so longer values are dropped
MAX_PARAM_CHARS = 500

#: A training run's model files, logged as run artifacts when it completes (those present by then): the weights, their
#: checksum sidecar, and the record inference reads back.
MODEL_FILES: tuple[str, ...] = ("model.pt", "model.pt.sha256", "model.json")


def literal_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level values of a bundle config that are plain settings: numbers, booleans, short strings and lists
    of those; expressions (``$...``), references (``@...``) and nested components are left out."""
    params = {}
    for key, value in config.items():
        if key.startswith("_") or key in ("imports",):
            continue
        scalars = value if isinstance(value, list) else [value]
        if not scalars or not all(isinstance(v, (int, float, bool, str)) or v is None for v in scalars):
            continue
        if any(isinstance(v, str) and v[:1] in ("$", "@", "%") for v in scalars):
            continue
        if len(str(value)) <= MAX_PARAM_CHARS:
            params[key] = value
    return params


def _mlflow_handlers(engine: Engine) -> list[Any]:
    """MONAI ``MLFlowHandler`` objects attached to ``engine``.

    The tracking settings append the MLflow handlers after this one, so it cannot reference them, and ignite has no
    public API that lists an engine's handlers (only ``Engine.has_event_handler`` for a handler one already holds).
    So the ``STARTED`` handlers of this engine are read from ``Engine._event_handlers`` (ignite's registry, stable
    across its releases) and those that are an ``MLFlowHandler``'s ``start`` kept.
    """
    from monai.handlers import MLFlowHandler

    found = []
    for handler, _args, _kwargs in engine._event_handlers.get(Events.STARTED, []):
        owner = getattr(handler, "__self__", None)  # MLFlowHandler.attach registers the bound method self.start
        if isinstance(owner, MLFlowHandler) and owner not in found:
            found.append(owner)
    return found


class TrackingExtras:
    """Hand hyper-parameters, result files and model files to the MLflow handlers of the engine it is attached to.

    Args:
        artifacts: files or folders the bundle writes (metrics JSON, plots); those present when the engine completes
            are logged as run artifacts.
        params: extra parameters; by default the literal top-level values of the executed config that
            ``--tracking mlflow`` saves (and logs as an artifact) are used.
        iteration_output_transform: replaces the per-iteration ``output_transform`` of the MLflow handlers, for
            engines whose output is not MONAI's ``{"loss": ...}`` list (MONAI's default turns a dict output into a
            tuple, which MLflow cannot log); it may return a float or a dict of floats.
        model_files: the model files logged when the engine completes (those present by then). By default, on a
            trainer (``monai.engines.Trainer``) only, :data:`MODEL_FILES` in the folder ``--tracking`` saved the
            executed config to: the bundle's ``output_dir`` (``models/``), where the bundles write ``model.pt``.
            An empty list logs none.
        close_run: end the MLflow run when this engine completes (an evaluation run: MONAI's ``--tracking mlflow``
            settings close the trainer's run only, so an evaluation's would stay RUNNING).
    """

    def __init__(
        self,
        artifacts: Iterable[str | os.PathLike] = (),
        params: Mapping[str, Any] | None = None,
        iteration_output_transform: Callable[[Any], Any] | None = None,
        model_files: Iterable[str | os.PathLike] | None = None,
        close_run: bool = False,
    ) -> None:
        self.close_run = bool(close_run)
        self.artifacts = [str(a) for a in artifacts]
        self.params = dict(params or {})
        self.iteration_output_transform = iteration_output_transform
        self.model_files = None if model_files is None else [str(f) for f in model_files]

    def attach(self, engine: Engine) -> None:
        """Register before MONAI's handler starts its run (the tracking handlers are appended after this one)."""
        engine.add_event_handler(Events.STARTED, self._on_started)

    def _on_started(self, engine: Engine) -> None:
        for handler in _mlflow_handlers(engine):
            executed = _executed_config(handler)
            params = {**(literal_params(executed[1]) if executed else {}), **self.params}
            if params:
                handler.experiment_param = {**params, **(handler.experiment_param or {})}
            models = self._model_files(engine, executed[0] if executed else None)
            # MLFlowHandler logs its artifacts when the engine completes; a path missing by then is skipped (os.walk)
            handler.artifacts = tuple(dict.fromkeys(a for a in (*handler.artifacts, *self.artifacts, *models) if a))
            if self.iteration_output_transform is not None:
                handler.output_transform = self.iteration_output_transform
            if self.close_run and not engine.has_event_handler(handler.close, Events.COMPLETED):
                # registered now, after the handler's own COMPLETED step (which logs the artifacts): the run ends
                # FINISHED instead of staying RUNNING (MONAI's settings close only the trainer's run)
                engine.add_event_handler(Events.COMPLETED, handler.close)

    def _model_files(self, engine: Engine, executed_config: Path | None) -> list[str]:
        """The model files this engine's run logs (see ``model_files``)."""
        if self.model_files is not None:
            return self.model_files
        if not isinstance(engine, Trainer) or executed_config is None:
            return []
        # MONAI's patch_bundle_tracking writes the executed config into the bundle's output_dir, the models folder
        return [str(executed_config.parent / name) for name in MODEL_FILES]


def _executed_config(handler: Any) -> tuple[Path, dict[str, Any]] | None:
    """The executed config file among the handler's artifacts (if tracking saved one), with its content."""
    for path in handler.artifacts:
        if path and str(path).endswith(".json") and Path(path).is_file():
            try:
                content = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(content, dict) and "imports" in content:  # a bundle config, not a result file
                return Path(path), content
    return None
