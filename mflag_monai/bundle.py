"""Where a bundle lives and where a run writes: helpers the bundle configs call.

``bundle_root`` lets every config default to the folder it was read from, so a bundle copied out of the repository
(or fetched with ``python -m monai.bundle download``) runs from its own folder; ``fresh_output_dir`` keeps a run from
writing over the outputs of an earlier one. ``downstream_datalist`` and ``local_tracking_uri`` are the lines the
downstream training configs would otherwise each spell out in full.
"""

from __future__ import annotations

import ast
import atexit
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "bundle_root",
    "bundle_version",
    "RENAMED_SETTINGS",
    "refuse_renamed",
    "check_settings",
    "downstream_datalist",
    "flag",
    "fresh_output_dir",
    "local_tracking_uri",
    "lock_bundle_root",
    "SELECT_ON",
    "selection",
    "selection_comparison",
    "selection_score",
    "trained_settings",
]

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


def _command_line_config_root(argv: Sequence[str] | None = None) -> Path | None:
    """The folder of the first ``--config_file`` of a ``python -m monai.bundle`` command line, else ``None``.

    MONAI 1.6.1's ``ConfigWorkflow`` keeps that folder (``config_root_path``) but shares it with nothing a config
    expression can read, so the command line it was parsed from is read here. The forms python-fire accepts are
    understood: ``--config_file F``, ``--config_file=F``, a list ``"['a.yaml','b.yaml']"`` and ``a.yaml,b.yaml``.
    """
    argv = list(sys.argv if argv is None else argv)
    if not argv or Path(argv[0]).parts[-3:] != ("monai", "bundle", "__main__.py"):
        return None  # not the monai.bundle command (pytest, a script, MONAI Label): callers pass bundle_root
    value = None
    for i, arg in enumerate(argv):
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        if value is not None:
            break
    if not value:
        return None
    first = _first_config_file(value)
    return Path(first).parent if first else None


def _first_config_file(value: str) -> str | None:
    text = value.strip()
    if text.startswith(("[", "(")):
        try:
            files = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return str(files[0]) if files else None
    if "," in text and not Path(text).is_file():
        return text.split(",")[0].strip()
    return text


def bundle_root(default: str | os.PathLike) -> str:
    """The bundle folder of the config being run: the parent of its ``configs/`` folder.

    On the command line (``python -m monai.bundle run ... --config_file <bundle>/configs/train.yaml``) this is the
    folder MONAI itself treats as the bundle root (``ConfigWorkflow.run`` puts it on ``sys.path``), as given:
    relative paths stay relative, so running from the repository root writes where it always did. Anywhere else (a
    ``ConfigWorkflow`` or ``ConfigParser`` built in Python, ``verify_net_in_out``, ``ckpt_export``) it is
    ``default``; pass ``bundle_root`` there, as MONAI Label and the model zoo's tools do.

    Args:
        default: the value when not run by the ``monai.bundle`` command, e.g. ``bundles/segmentation`` (relative to
            the working directory, as MONAI reads it).
    """
    config_root = _command_line_config_root()
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


def _bundle_config(configs_dir: str | os.PathLike, name: str) -> Path | None:
    """``name`` in the folder of the configs the ``monai.bundle`` command was given, else in ``configs_dir``."""
    command_configs = _command_line_config_root()
    candidates = [c / name for c in (command_configs, Path(configs_dir)) if c is not None]
    return next((c for c in candidates if c.is_file()), None)


#: Settings renamed, old name → new name: a value under the old name is refused (it would otherwise be a new, unused
#: config key, silently ignored).
RENAMED_SETTINGS = {"encoder_depth": "image_depth"}


def refuse_renamed(**given: object) -> None:
    """Refuse a value passed under a renamed setting's old name (``--encoder_depth 18``), naming the new one.

    The bundles declare each old name with the value ``null`` and call this with it; python-fire passes ``None``
    through, so only a value the user gave is refused.
    """
    from .utils.errors import InputError

    for old, value in given.items():
        if value is not None and str(value).lower() not in ("none", "null"):
            new = RENAMED_SETTINGS.get(old, "?")
            raise InputError(f"renamed: use --{new} {value} (one name for the encoder depth everywhere)", f"--{old}")


def bundle_version(configs_dir: str | os.PathLike) -> str:
    """The bundle's version, from its ``metadata.json`` (``"unknown"`` when there is none), for the algorithm
    identification of its DICOM results (MONAI Label parses configs without their metadata, so ``@_meta_`` is not
    always there)."""
    path = _bundle_config(configs_dir, "metadata.json")
    if path is None:
        return "unknown"
    try:
        return str(json.loads(path.read_text()).get("version", "unknown"))
    except ValueError:
        return "unknown"


class TrainedSettings(dict):
    """:func:`trained_settings`' answer: a ``dict`` whose missing key is refused in one line that says what to pass."""

    def __init__(self, values: Mapping[str, Any], reason: str, hint: str = "") -> None:
        super().__init__(values)
        self.reason, self.hint = reason, hint

    def __missing__(self, key: str) -> Any:
        from .utils.errors import InputError

        raise InputError(f"{self.reason}; pass --{key}{self.hint}", key)


def trained_settings(
    ckpt_path: str | os.PathLike, keys: Sequence[str], configs_dir: str | os.PathLike
) -> TrainedSettings:
    """What inference and evaluation need to know of the trained model: the record written beside its weights by
    training (``models/model.json`` for ``models/model.pt``), over the defaults of the bundle's ``configs/train.yaml``
    (declared there once, never re-typed).

    Before training (no record) the defaults apply, so tools can parse the config. Weights without a record (trained
    before the record existed) are used with the defaults, saying so: pass the settings they were trained with
    (``--image_size`` ...) if those differ. A setting found in neither is refused when it is read, naming it.

    Args:
        ckpt_path: the model file; its record is the ``.json`` beside it.
        keys: the settings to return, each from the record or a literal of ``train.yaml``.
        configs_dir: the folder of the bundle's ``train.yaml`` (``<bundle_root>/configs``); when the ``monai.bundle``
            command was given configs from another folder (outputs moved with ``--bundle_root``), that folder.
    """
    import yaml

    from .utils.errors import InputError

    train_yaml = _bundle_config(configs_dir, "train.yaml")
    defaults = yaml.safe_load(train_yaml.read_text()) if train_yaml is not None else {}
    weights = Path(ckpt_path)
    sidecar = weights.with_suffix(".json")
    record: dict[str, Any] = {}
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text())
        except ValueError as err:
            raise InputError(f"not valid JSON ({err})", sidecar) from None
    elif weights.is_file():
        logger.warning(
            "%s has no %s beside it (trained before the record existed): assuming train.yaml's defaults %s; pass the "
            "values it was trained with if they differ",
            weights,
            sidecar.name,
            ", ".join(f"{k}={defaults.get(k)!r}" for k in keys if k in defaults),
        )
    settings = {}
    for key in keys:
        if key in record:
            settings[key] = record[key]
        elif key in defaults and not (isinstance(defaults[key], str) and defaults[key].startswith(("$", "@"))):
            settings[key] = defaults[key]
    where = str(train_yaml or Path(configs_dir) / "train.yaml")
    hint = " (or --configs_dir, the folder of the bundle's train.yaml)" if train_yaml is None else ""
    return TrainedSettings(settings, f"neither {sidecar} nor {where} gives this setting", hint)


def local_tracking_uri(log_dir: str | os.PathLike) -> str:
    """The MLflow store a run writes to with ``--tracking mlflow`` when no server is given: ``<log_dir>/mlruns.db``
    (SQLite, absolute path)."""
    from monai.utils import path_to_sqlite_uri

    return path_to_sqlite_uri(os.path.abspath(os.path.join(log_dir, "mlruns.db")))


def _whole(value: object, name: str, minimum: int) -> int:
    from .utils.errors import InputError

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"expected a whole number, got {value!r}", f"--{name}")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"expected a whole number, got {value!r}", f"--{name}") from None
    if not math.isfinite(number) or number != int(number):
        raise InputError(f"expected a whole number, got {value!r}", f"--{name}")
    if number < minimum:
        raise InputError(f"must be at least {minimum}, got {int(number)}", f"--{name}")
    return int(number)


def check_settings(
    *,
    batch_size: object = None,
    micro_batch_size: object = None,
    image_size: object = None,
    resize: object = None,
    epochs: object = None,
    learning_rate: object = None,
    num_workers: object = None,
    val_interval: object = None,
    fraction: object = None,
    image_multiple: int = 1,
) -> None:
    """Refuse bundle settings that cannot work, before anything is loaded: one ``error: <what> (--<setting>)`` line
    instead of a traceback (or a run that silently does something else) minutes later.

    Only the settings given are checked (``None``: not a setting of this bundle, or left to its default meaning).

    Args:
        batch_size, epochs, val_interval: whole numbers >= 1.
        micro_batch_size: ``None`` or 2..``batch_size``: in training, BatchNorm needs more than one value per channel,
            and the projection heads' BatchNorm sees one vector per image.
        image_size: >= 32 (a ResNet downsamples 32x), and a multiple of ``image_multiple``.
        resize: ``None`` or >= ``image_size`` (the crop is taken from the resized image; a smaller resize would train
            on smaller images than asked).
        learning_rate: a finite number >= 0 (0 keeps the weights: the tests' and the benchmark's control runs).
        num_workers: >= 0.
        fraction: the share of training labels, in (0, 1].
        image_multiple: what ``image_size`` must divide by (segmentation: 32, for the decoder's skip connections).
    """
    from .utils.errors import InputError

    batch = None if batch_size is None else _whole(batch_size, "batch_size", 1)
    for name, value in (("epochs", epochs), ("val_interval", val_interval)):
        if value is not None:
            _whole(value, name, 1)
    if num_workers is not None:
        _whole(num_workers, "num_workers", 0)
    if micro_batch_size is not None and str(micro_batch_size).lower() not in ("none", "null"):
        micro = _whole(micro_batch_size, "micro_batch_size", 1)
        if micro < 2:
            raise InputError(
                "must be at least 2: in training, BatchNorm needs more than one value per channel (the projection "
                "heads see one vector per image)",
                "--micro_batch_size",
            )
        if batch is not None and micro > batch:
            raise InputError(f"{micro} is larger than --batch_size {batch}", "--micro_batch_size")
    size = None
    if image_size is not None:
        size = _whole(image_size, "image_size", 32)
        if size % image_multiple:
            lower, upper = size // image_multiple * image_multiple, (size // image_multiple + 1) * image_multiple
            raise InputError(
                f"{size} is not a multiple of {image_multiple}, which this network needs; use {lower} or {upper}",
                "--image_size",
            )
    if resize is not None and str(resize).lower() not in ("none", "null"):
        side = _whole(resize, "resize", 1)
        if size is not None and side < size:
            raise InputError(
                f"{side} is smaller than --image_size {size}: images are resized, then cropped to image_size",
                "--resize",
            )
    if learning_rate is not None:
        try:
            rate = float(learning_rate)
        except (TypeError, ValueError):
            rate = float("nan")
        if not (math.isfinite(rate) and rate >= 0):
            raise InputError(f"expected a number >= 0, got {learning_rate!r}", "--learning_rate")
    if fraction is not None:
        try:
            share = float(fraction)
        except (TypeError, ValueError):
            share = float("nan")
        if not (0 < share <= 1):
            raise InputError(f"expected a share of the labels in (0, 1], got {fraction!r}", "--fraction")


#: What picks models/model.pt and stops training early: the task's metric (AUROC, Dice, mAP), or the lowest
#: validation loss (MGCA's checkpoint callback and early stopping monitor ``val_loss``).
SELECT_ON = ("metric", "val_loss")


def _select_on(value: object) -> str:
    if value not in SELECT_ON:
        from .utils.errors import InputError

        raise InputError(f"expected one of {', '.join(SELECT_ON)}, got {value!r}", "--select_on")
    return str(value)


def selection(task_metric: dict, loss_metric: dict, select_on: object) -> tuple[dict, dict]:
    """``(key_val_metric, additional_metrics)`` of a downstream evaluator: the selecting metric and the other one.

    Both are computed and logged at every validation; ``select_on`` decides which one ``state.best_metric`` follows
    (hence models/model.pt) and early stopping reads.
    """
    if _select_on(select_on) == "val_loss":
        return dict(loss_metric), dict(task_metric)
    return dict(task_metric), dict(loss_metric)


def selection_comparison(select_on: object):
    """The evaluator's ``metric_cmp_fn``: a higher task metric, or a lower validation loss, is better."""
    if _select_on(select_on) == "val_loss":
        return lambda current, best: current < best
    return lambda current, best: current > best


def selection_score(select_on: object, task_metric: str | Mapping[str, object]):
    """Early stopping's ``score_function`` (higher is better): the task metric, or the negated validation loss.

    Args:
        select_on: ``metric`` or ``val_loss``.
        task_metric: the task metric's name, or the evaluator's ``key_metric`` mapping (its one key is the name).
    """
    metric_name = task_metric if isinstance(task_metric, str) else next(iter(task_metric))
    if _select_on(select_on) == "val_loss":
        return lambda engine: -engine.state.metrics["val_loss"]
    return lambda engine: engine.state.metrics[metric_name]


_LOCK_NAME = ".run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def lock_bundle_root(root: str | os.PathLike) -> Path:
    """Hold ``<root>/.run.lock`` for this process, so that two training runs never write one bundle folder at once
    (both would exit 0 and only one set of models would survive).

    The lock file holds the owner's PID and start time; it is removed when this process exits. A second run stops
    with one line naming the first run's PID; a lock left by a process that no longer runs (a crash, a killed job)
    is taken over with a warning.

    Under ``torchrun`` only rank 0 takes it (the other ranks are the same run).

    Raises:
        InputError: a live process holds the lock.
    """
    from .utils.errors import InputError

    folder = Path(root)
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return folder / _LOCK_NAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _LOCK_NAME
    record = f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner_text = path.read_text().split()
                owner = int(owner_text[0])
                since = owner_text[1] if len(owner_text) > 1 else "?"
            except (OSError, ValueError, IndexError):
                owner, since = -1, "?"
            if owner == os.getpid():
                return path  # this process already holds it (a second initialize of the same run)
            if owner > 0 and _alive(owner):
                raise InputError(
                    f"another run (PID {owner}, started {since}) is training in this bundle folder; wait for it to "
                    f"finish, or give this run another --bundle_root (remove {path} only if that process is not a run)",
                    folder,
                ) from None
            logger.warning("Taking over %s: its run (PID %s, started %s) no longer runs", path, owner, since)
            print(f"warning: taking over {path}: its run (PID {owner}) no longer runs", flush=True)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(record)
        pid = os.getpid()
        atexit.register(_release_lock, path, pid)
        return path
    raise InputError("cannot take the run lock (another run took it at the same moment)", path)


def _release_lock(path: Path, pid: int) -> None:
    try:
        if path.read_text().split()[0] == str(pid):
            path.unlink()
    except (OSError, IndexError):
        pass
