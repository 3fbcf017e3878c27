"""Command line: ``python -m mflag_monai.data {prepare,check,demo} ...``.

Every user error (a wrong folder, a missing column, an empty table, an unknown option) ends in one line,
``error: <what> (<file>)``, and exit code 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ..utils.errors import InputError, find_input_error, format_error
from ..utils.io import atomic_write_json
from . import PREPARERS, get_preparer
from .check import TASKS

DEMO_LAYOUTS = ("default", "iu-xray", "iu-xray-csv", "chexpert-plus")
# Options every preparer is called with, by the command line itself.
_COMMON = ("root", "out", "fraction", "seed")


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (``error: ...``, exit code 2)."""

    def error(self, message: str) -> NoReturn:
        hint = "" if "--help" in message else f" (see {self.prog} --help)"
        print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(2)


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


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, with one ``prepare`` sub-command per dataset (its own options and ``--help``)."""
    parser = _Parser(prog="python -m mflag_monai.data", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    prep = sub.add_parser("prepare", help="turn a dataset's official layout into a MONAI datalist JSON")
    datasets = prep.add_subparsers(dest="dataset", required=True, metavar="DATASET", parser_class=_Parser)
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

    demo = sub.add_parser("demo", help="write the built-in synthetic demo data")
    demo.add_argument("--out", default=None, help="folder (default: the demo cache folder)")
    demo.add_argument(
        "--layout",
        choices=DEMO_LAYOUTS,
        default="default",
        help="default: MIMIC-CXR, CheXpert, RSNA and SIIM; iu-xray: Open-i XML + PNG + DICOM; iu-xray-csv: the "
        "indiana_*.csv redistribution; chexpert-plus: df_chexpert_plus_240401.csv + PNG (these need --out)",
    )
    demo.add_argument("--num-studies", "--num_studies", type=int, default=None, help="studies (reports, patients)")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--image-size", "--image_size", type=int, default=None)
    demo.add_argument("--overwrite", action="store_true")
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the sub-command; a user error is one ``error:`` line and exit code 2."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the sub-command whose options were meant (argparse would blame the top-level parser)
        command = f"{args.command} {args.dataset}" if args.command == "prepare" else args.command
        option = next((u for u in unknown if u.startswith("-")), unknown[0])
        parser.error(f"{command} has no option {option}; see python -m mflag_monai.data {command} --help")
    try:
        return _run(args, parser)
    except Exception as err:
        cause = find_input_error(err, extra=(ValueError, KeyError, OSError))
        if cause is None:
            raise  # a bug, not a user error: the traceback is the useful output
        if args.debug:
            traceback.print_exc()
        print(format_error(cause), file=sys.stderr)
        return 2


def _prepare(args: argparse.Namespace) -> int:
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


def _check(args: argparse.Namespace) -> int:
    from .check import DatalistSchema, check_datalist, infer_schema
    from .datalist import load_datalist

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


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.layout != "default":
        from .demo_layouts import write_chexpert_plus_demo, write_iu_xray_demo

        if args.out is None:
            parser.error(f"demo --layout {args.layout} needs --out")
        size = {"num_reports" if args.layout.startswith("iu") else "num_patients": args.num_studies}
        kwargs = {k: v for k, v in {**size, "seed": args.seed, "image_size": args.image_size}.items() if v is not None}
        if args.layout == "chexpert-plus":
            root = write_chexpert_plus_demo(args.out, **kwargs)
        else:
            root = write_iu_xray_demo(args.out, layout="csv" if args.layout == "iu-xray-csv" else "xml", **kwargs)
        print(f"Demo {args.layout} data at {root}")
        return 0
    from .demo import generate_demo_data

    kwargs = {"num_studies": args.num_studies, "seed": args.seed, "image_size": args.image_size}
    root = generate_demo_data(args.out, overwrite=args.overwrite, **{k: v for k, v in kwargs.items() if v is not None})
    print(f"Demo data at {root}")
    return 0


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "prepare":
        return _prepare(args)
    if args.command == "check":
        return _check(args)
    return _demo(args, parser)


if __name__ == "__main__":
    sys.exit(main())
