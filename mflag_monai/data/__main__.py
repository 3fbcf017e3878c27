"""Command line: ``python -m mflag_monai.data {prepare,demo} ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..utils.io import atomic_write_json
from . import PREPARERS, get_preparer


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the sub-command."""
    parser = argparse.ArgumentParser(prog="python -m mflag_monai.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="turn a dataset's official layout into a MONAI datalist JSON")
    prep.add_argument("dataset", choices=sorted(PREPARERS))
    prep.add_argument("--root", required=True, help="the dataset's folder, as downloaded")
    prep.add_argument("--out", default=None, help="datalist JSON to write (default: DATASET.json here)")
    prep.add_argument("--reports-root", "--reports_root", default=None, help="MIMIC-CXR: folder holding files/p../s*.txt")
    prep.add_argument("--fraction", type=float, default=1.0, help="share of the training split kept (stratified): 0.01, 0.1, 1.0")
    prep.add_argument("--seed", type=int, default=42, help="seed of the splits and the fraction draw")
    prep.add_argument("--task", default=None, help="for datasets serving several tasks: classification, segmentation, detection")

    check = sub.add_parser("check", help="report every problem of a datalist (missing files, unreadable headers, ...)")
    check.add_argument("datalist", help="datalist JSON")
    check.add_argument("--report-key", "--report_key", default=None, help="check this key for empty report text")
    check.add_argument("--skip-bad", "--skip_bad", default=None, metavar="OUT", help="write the entries without errors to OUT")
    check.add_argument("--no-headers", action="store_true", help="only check that files exist (faster)")

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

    args = parser.parse_args(argv)
    try:
        return _run(args, parser)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as err:
        # a user error (wrong folder, missing column...): one line naming the file and the problem
        print(f"error: {err}", file=sys.stderr)
        return 2


DEMO_LAYOUTS = ("default", "iu-xray", "iu-xray-csv", "chexpert-plus")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "prepare":
        options = {"reports_root": args.reports_root} if args.reports_root else {}
        if args.task:
            options["task"] = args.task
        args.out = args.out or f"{args.dataset}.json"
        prepared = get_preparer(args.dataset)(args.root, out=Path(args.out), fraction=args.fraction, seed=args.seed, **options)
        atomic_write_json(prepared.to_json(), args.out)
        print(f"Wrote {args.out}\n{prepared.format_summary()}")
        return 0
    if args.command == "check":
        from .check import check_datalist
        from .datalist import load_datalist

        report = check_datalist(load_datalist(args.datalist), report_key=args.report_key, read_headers=not args.no_headers)
        print(report.format())
        if args.skip_bad:
            atomic_write_json(report.clean, args.skip_bad)
            print(f"Wrote the {sum(len(v) for v in report.clean.values())} usable entries to {args.skip_bad}")
            return 0
        return 1 if report.errors else 0
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

    kwargs = {k: v for k, v in {"num_studies": args.num_studies, "seed": args.seed, "image_size": args.image_size}.items() if v is not None}
    root = generate_demo_data(args.out, overwrite=args.overwrite, **kwargs)
    print(f"Demo data at {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
