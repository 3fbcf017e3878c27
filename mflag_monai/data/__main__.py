"""Command line: ``python -m mflag_monai.data {prepare,check,demo} ...``.

Every user error (a wrong folder, a missing column, an empty table, an unknown option) ends in one line,
``error: <what> (<file>)``, and exit code 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import NoReturn

from ..utils.errors import find_input_error, format_error
from .prepare.cli import add_check_parser, add_prepare_parser, run_check, run_prepare

DEMO_LAYOUTS = ("default", "iu-xray", "iu-xray-csv", "chexpert-plus")


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (``error: ...``, exit code 2)."""

    def error(self, message: str) -> NoReturn:
        hint = "" if "--help" in message else f" (see {self.prog} --help)"
        print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, with one ``prepare`` sub-command per dataset (its own options and ``--help``)."""
    parser = _Parser(prog="python -m mflag_monai.data", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    add_prepare_parser(sub, _Parser)
    add_check_parser(sub)
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


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.layout != "default":
        from .demo import write_chexpert_plus_demo, write_iu_xray_demo

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
        return run_prepare(args)
    if args.command == "check":
        return run_check(args)
    return _demo(args, parser)


if __name__ == "__main__":
    sys.exit(main())
