"""The ``prepare`` and ``check`` sub-commands of ``python -m mflag_monai.data`` (parsers and runners).

``prepare DATASET`` gets one option per keyword parameter of the dataset's preparer, with the help text of its
docstring's ``Args:`` section; ``check`` reports every problem of a datalist.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ...utils.errors import InputError
from ...utils.io import atomic_write_json
from .check import TASKS
from .registry import PREPARERS, get_preparer

__all__ = ["add_check_parser", "add_prepare_parser", "run_check", "run_prepare"]

# Options every preparer is called with, by the command line itself.
_COMMON = ("root", "out", "fraction", "seed")


def _arg_help(fn: Callable) -> dict[str, str]:
    """``{parameter: description}`` from the ``Args:`` section of ``fn``'s docstring."""
    doc = inspect.getdoc(fn) or ""
    section = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    section = re.split(r"\n\S", section, maxsplit=1)[0]  # up to the next unindented heading (Returns:, Raises:)
    found: dict[str, str] = {}
    for match in re.finditer(r"^ {4}(\w+)(?: \([^)]*\))?: (.*(?:\n {6,}.*)*)", section, flags=re.MULTILINE):
        found[match.group(1)] = " ".join(part.strip() for part in match.group(2).splitlines())
    return found


def _add_preparer_options(parser: argparse.ArgumentParser, fn: Callable) -> list[str]:
    """One option per keyword parameter of the preparer; returns their names (``None`` defaults are omitted)."""
    helps = _arg_help(fn)
    names = []
    for name, param in inspect.signature(fn).parameters.items():
        if name in _COMMON or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        flag = "--" + name.replace("_", "-")
        flags = [flag] if "_" not in name else [flag, f"--{name}"]
        text = (helps.get(name, "") + f" (default: {param.default!r})").replace("%", "%%").strip()
        annotation = str(param.annotation)
        default = param.default
        if isinstance(default, bool):
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, tuple):
            kind = float if "float" in annotation else str
            nargs = len(default) if "..." not in annotation else "+"
            parser.add_argument(*flags, dest=name, type=kind, nargs=nargs, default=default, help=text)
        elif isinstance(default, float) or annotation == "float":
            parser.add_argument(*flags, dest=name, type=float, default=default, help=text)
        elif isinstance(default, int) or annotation == "int":
            parser.add_argument(*flags, dest=name, type=int, default=default, help=text)
        else:
            parser.add_argument(*flags, dest=name, default=default, help=text)
        names.append(name)
    return names


def add_prepare_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    """The ``prepare`` sub-command: one sub-parser per registered dataset (its own options and ``--help``)."""
    prep = sub.add_parser("prepare", help="turn a dataset's official layout into a MONAI datalist JSON")
    datasets = prep.add_subparsers(dest="dataset", required=True, metavar="DATASET", parser_class=parser_class)
    for name in sorted(PREPARERS):
        fn = PREPARERS[name]
        doc = inspect.getdoc(fn) or ""
        ds = datasets.add_parser(
            name,
            help=doc.split("\n", 1)[0],
            description=doc.split("Args:", 1)[0].strip(),  # the options below carry the Args: descriptions
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        ds.add_argument("--root", required=True, help="the dataset's folder, as downloaded")
        ds.add_argument("--out", default=None, help="datalist JSON to write (default: DATASET.json here)")
        params = inspect.signature(fn).parameters
        if "fraction" in params:
            ds.add_argument(
                "--fraction", type=float, default=1.0, help="share of the training split kept: 0.01, 0.1, 1.0"
            )
        if "seed" in params:
            ds.add_argument("--seed", type=int, default=42, help="seed of the splits and the fraction draw")
        ds.set_defaults(options=_add_preparer_options(ds, fn))
        ds.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error"
        )


def add_check_parser(sub: argparse._SubParsersAction) -> None:
    """The ``check`` sub-command: report every problem of a datalist."""
    check = sub.add_parser("check", help="report every problem of a datalist (missing files, unreadable headers, ...)")
    check.add_argument("datalist", help="datalist JSON")
    check.add_argument(
        "--task", choices=TASKS, default=None, help="what the datalist is for (default: from the entries)"
    )
    check.add_argument("--dataset", default=None, help="classification: the dataset, for its number of labels")
    check.add_argument("--num-classes", "--num_classes", type=int, default=None, help="labels or classes of the task")
    check.add_argument("--report-key", "--report_key", default=None, help="check this key for empty report text")
    check.add_argument(
        "--skip-bad", "--skip_bad", default=None, metavar="OUT", help="write the entries without errors to OUT"
    )
    check.add_argument("--no-headers", action="store_true", help="only check that files exist (faster)")
    check.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error"
    )


def run_prepare(args: argparse.Namespace) -> int:
    """``prepare DATASET``: run the preparer and write the datalist JSON (an empty training split is an error)."""
    fn = get_preparer(args.dataset)
    args.out = args.out or f"{args.dataset}.json"
    params = inspect.signature(fn).parameters
    kwargs = {k: getattr(args, k) for k in ("fraction", "seed") if k in params}
    if "out" in params:
        kwargs["out"] = Path(args.out)
    kwargs.update({k: getattr(args, k) for k in args.options if getattr(args, k) is not None})
    root = Path(args.root).expanduser()
    if not root.exists():
        raise InputError("dataset folder not found (--root)", root)
    if not root.is_dir():
        raise InputError("--root must be the dataset's folder, not a file", root)
    prepared = fn(root, **kwargs)
    empty = [split for split in ("training",) if not prepared.datalist.get(split)]
    if empty:  # nothing to train on: say why instead of writing an empty datalist
        print(prepared.format_summary(), file=sys.stderr)
        raise InputError(f"no {empty[0]} entries found (the counts above say what was dropped); nothing written", root)
    atomic_write_json(prepared.to_json(), args.out)
    print(f"Wrote {args.out}\n{prepared.format_summary()}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``check DATALIST``: print every problem; exit code 1 when there are errors (0 with ``--skip-bad OUT``)."""
    from ..datalist import load_datalist
    from .check import DatalistSchema, check_datalist, infer_schema

    datalist = load_datalist(args.datalist)
    extra = {"num_classes": args.num_classes} if args.num_classes else {}
    if args.task:
        schema = DatalistSchema.for_task(args.task, dataset=args.dataset, **extra)
    else:
        schema = infer_schema(datalist, **extra)
        if schema.task == "classification" and args.dataset:
            schema = DatalistSchema.for_task("classification", dataset=args.dataset, **extra)
    print(f"Checking {args.datalist} for the task '{schema.task}'")
    report = check_datalist(datalist, report_key=args.report_key, read_headers=not args.no_headers, schema=schema)
    print(report.format())
    if args.skip_bad:
        if report.split_errors:
            raise InputError(str(report.split_errors[0]).removeprefix("error: "), args.datalist)
        atomic_write_json(report.clean, args.skip_bad)
        print(f"Wrote the {sum(len(v) for v in report.clean.values())} usable entries to {args.skip_bad}")
        return 0
    return 1 if report.errors else 0
