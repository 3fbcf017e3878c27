"""One line per bad input: the error type the project raises for the user's files, folders, datalists and options,
and how command lines and bundle runs print it (``error: <what> (<where>)``, no traceback unless asked)."""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import pickle
import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "INPUT_ERROR_EXIT",
    "InputError",
    "NonFiniteLossError",
    "batch_files",
    "concise_errors",
    "find_input_error",
    "format_error",
    "non_finite_loss_error",
]


class InputError(ValueError):
    """A problem with the user's input, worded as ``<what> (<where>)``: the file, folder, entry or option at fault.

    A ``ValueError``, so that code catching bad values keeps working.
    """

    def __init__(self, what: str, where: str | os.PathLike | None = None) -> None:
        self.what = str(what)
        self.where = None if where is None else str(where)
        super().__init__(f"{self.what} ({self.where})" if self.where else self.what)


# Errors that mean "the input is wrong", not "the code is wrong", when they reach the top of a command.
_INPUT_TYPES: tuple[type[BaseException], ...] = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    pickle.UnpicklingError,
)


# OS errors that are about the machine the user gave the run, not the code: a full disk, a quota, a read-only mount.
_INPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}

#: The exit status of a run stopped by an input error (as the command-line tools' argparse errors); bugs exit 1.
INPUT_ERROR_EXIT = 2


def find_input_error(err: BaseException | None, extra: tuple[type[BaseException], ...] = ()) -> BaseException | None:
    """The input error behind ``err`` (MONAI's config parser wraps errors in ``RuntimeError``), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, _INPUT_TYPES + extra):
            return err
        if isinstance(err, OSError) and err.errno in _INPUT_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def format_error(err: BaseException) -> str:
    """``error: <message>`` on one line: the error's ``headline`` when it has one, else its lines joined."""
    if isinstance(err, KeyError) and err.args:
        message = str(err.args[0])  # str(KeyError) adds quotes
    elif isinstance(err, OSError) and err.filename is not None and not isinstance(err, InputError):
        message = f"{err.strerror or type(err).__name__} ({err.filename})"
    else:
        message = str(err) or type(err).__name__
    if getattr(err, "headline", None):  # e.g. a datalist report: the full list was printed above
        return f"error: {err.headline}"
    lines = [line.strip() for line in message.splitlines() if line.strip()] or [type(err).__name__]
    return "error: " + " ".join(lines)  # a hint on the following lines (a command to run) is kept


def concise_errors(debug: bool = False) -> None:
    """Make an uncaught input error end the process with one ``error: ...`` line and exit status 2 instead of a
    traceback.

    Called by the bundles' ``initialize`` (``--debug true`` keeps Python's traceback); errors that are not input
    errors (bugs) keep their traceback and exit status 1 either way.
    """
    if debug:
        sys.excepthook = sys.__excepthook__
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        cause = find_input_error(value)
        if cause is None:
            previous(kind, value, tb)
            return
        # anything already printed (e.g. the full datalist report) stays above this line
        _close_progress_bars()
        sys.stdout.flush()
        print(format_error(cause) + " (--debug true shows the traceback)", file=sys.stderr, flush=True)
        # Python exits 1 after an uncaught exception whatever the hook does: run the exit handlers (logging, MLflow,
        # the run lock) as a normal exit would, then leave with the input-error status
        atexit._run_exitfuncs()
        sys.stderr.flush()
        os._exit(INPUT_ERROR_EXIT)

    hook.__wrapped__ = previous  # type: ignore[attr-defined]
    sys.excepthook = hook
    _log_input_errors_without_traceback()


def _log_input_errors_without_traceback() -> None:
    """Drop the traceback from log records about input errors.

    ignite and MONAI's ``StatsHandler`` log the exception that stops an engine with its traceback before it reaches
    the hook; for an input error that is noise in front of the one ``error:`` line (the message is still logged).
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_drops_input_tracebacks", False):
        return

    def make_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if record.exc_info and record.exc_info[1] is not None and find_input_error(record.exc_info[1]) is not None:
            record.exc_info, record.exc_text = None, None
        return record

    make_record._drops_input_tracebacks = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def _close_progress_bars() -> None:
    """Close open tqdm bars, so that the error line starts on a line of its own and no bar is redrawn under it."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error
            pass


class NonFiniteLossError(InputError):
    """Training produced a NaN or infinite loss; the message names the step and the batch's files."""


def batch_files(batch: object, image_key: str = "image", file_key: str = "image_path", limit: int = 8) -> list[str]:
    """The image files of a batch (dict or list of items): ``file_key`` entries, else the images' MetaTensor
    ``filename_or_obj``; at most ``limit``."""
    items = batch if isinstance(batch, list) else [batch]
    files: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        value = item.get(file_key)
        if value is None:
            meta = getattr(item.get(image_key), "meta", None) or {}
            value = meta.get("filename_or_obj")
        if isinstance(value, str):
            files.append(value)
        elif isinstance(value, (list, tuple)):
            files.extend(str(v) for v in value)
    return files[:limit]


def non_finite_loss_error(
    loss: torch.Tensor | float, epoch: int, iteration: int, batch: object, what: str = "loss"
) -> NonFiniteLossError:
    """The error a NaN/inf loss stops training with: the value, the step and the batch's files."""
    files = batch_files(batch)
    names = ", ".join(files) if files else "(file names not in the batch)"
    return NonFiniteLossError(
        f"{what} is {float(loss)} at epoch {epoch}, iteration {iteration}; training stopped and nothing from this "
        f"step was saved. Check the batch's images and labels (or lower the learning rate): {names}"
    )
