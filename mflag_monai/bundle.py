"""Where a bundle lives and where a run writes: helpers the bundle configs call.

``bundle_root`` lets every config default to the folder it was read from, so a bundle copied out of the repository
(or fetched with ``python -m monai.bundle download``) runs from its own folder; ``fresh_output_dir`` keeps a run from
writing over the outputs of an earlier one. ``downstream_datalist`` and ``local_tracking_uri`` are the lines the
downstream training configs would otherwise each spell out in full.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["bundle_root", "downstream_datalist", "flag", "fresh_output_dir", "local_tracking_uri"]

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def flag(value: object, name: str) -> bool:
    """A boolean bundle setting as a bool.

    ``python -m monai.bundle run ... --text_cache false`` hands the config the *string* ``'false'`` (the command line
    is parsed by python-fire, which only knows ``False``), and a non-empty string is true in Python: without this,
    every ``--setting false`` would silently mean true. Accepts bools, ``true``/``false``/``yes``/``no``/``on``/``off``
    in any case, and 0/1; anything else is refused naming the setting.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    from .utils.errors import InputError

    raise InputError(f"expected true or false, got {value!r}", f"--{name}")


def _workflow_config_root() -> Path | None:
    """``config_root_path`` of the nearest ``ConfigWorkflow`` on the call stack (the folder of its first config)."""
    from monai.bundle import ConfigWorkflow

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow):
            return Path(owner.config_root_path)
        frame = frame.f_back
    return None


def bundle_root(default: str | os.PathLike) -> str:
    """The bundle folder of the config being run: the parent of its ``configs/`` folder.

    MONAI 1.6.1 does not set ``bundle_root``; its ``ConfigWorkflow`` (what ``python -m monai.bundle run`` and
    ``ConfigWorkflow(config_file=...)`` use) keeps the folder of the first config file, and treats that folder's
    parent as the bundle root when it is named ``configs`` (``ConfigWorkflow.run`` puts it on ``sys.path``). This
    returns the same folder, as given (relative paths stay relative, so running from the repository root writes
    where it always did). Evaluated outside a workflow (a bare ``ConfigParser``: ``verify_net_in_out``,
    ``ckpt_export``), it returns ``default``; those tools take ``--bundle_root`` as every bundle command does.

    Args:
        default: the value when no workflow is running, e.g. ``bundles/segmentation`` (relative to the working
            directory, as MONAI reads it).
    """
    config_root = _workflow_config_root()
    if config_root is None:
        return str(default)
    root = config_root.parent if config_root.name == "configs" else config_root
    return str(root)


def _holds_files(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def fresh_output_dir(path: str | os.PathLike) -> str:
    """``path`` when it is new or empty, otherwise the first free ``<path>_2``, ``<path>_3``, ...

    An inference run never writes over an earlier run's files; the folder it uses instead is logged. Nothing is
    created here (the writers create their folder when they first write).
    """
    base = Path(path)
    if not _holds_files(base):
        return str(base)
    n = 2
    while _holds_files(base.with_name(f"{base.name}_{n}")):
        n += 1
    chosen = base.with_name(f"{base.name}_{n}")
    logger.warning("%s holds an earlier run's outputs; this run writes to %s (--output_dir to choose)", base, chosen)
    return str(chosen)


def downstream_datalist(
    task: str,
    dataset_dir: object,
    datalist_file: str | os.PathLike | None,
    dataset: str,
    fraction: float,
    seed: int,
    skip_bad_entries: bool = False,
) -> dict[str, list[dict]]:
    """The datalist of a downstream training run, checked for ``task``
    (:func:`~mflag_monai.data.resolve_datalist` with ``schema=task``).

    RSNA Pneumonia serves all three tasks, so its preparer is told which one (``task``); the segmentation and
    detection bundles always pass their task on, the classification bundle only for RSNA (its other datasets have
    one task).

    Args:
        task: ``"classification"``, ``"segmentation"`` or ``"detection"``.
        dataset_dir, datalist_file, dataset, fraction, seed, skip_bad_entries: as
            :func:`~mflag_monai.data.resolve_datalist` takes them.
    """
    from .data import resolve_datalist

    options = {"task": task} if task != "classification" or dataset == "rsna-pneumonia" else {}
    return resolve_datalist(
        dataset_dir,
        datalist_file=datalist_file,
        dataset=dataset,
        fraction=fraction,
        seed=seed,
        skip_bad_entries=skip_bad_entries,
        schema=task,
        **options,
    )


def local_tracking_uri(log_dir: str | os.PathLike) -> str:
    """The MLflow store a run writes to with ``--tracking mlflow`` when no server is given: ``<log_dir>/mlruns.db``
    (SQLite, absolute path)."""
    from monai.utils import path_to_sqlite_uri

    return path_to_sqlite_uri(os.path.abspath(os.path.join(log_dir, "mlruns.db")))
