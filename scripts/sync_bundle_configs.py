"""Copy the downstream bundles' shared config fragments (mflag_monai/configs/downstream_train.yaml) into each
bundle's configs/train.yaml, between its "# >>> shared: <name>" and "# <<< shared: <name>" lines.

    python scripts/sync_bundle_configs.py           # write the copies
    python scripts/sync_bundle_configs.py --check   # exit 1 naming each copy that differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mflag_monai.configs import stale_fragments, sync_fragments

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report copies that differ")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_fragments(BUNDLES)
        for path, problems in stale.items():
            print(f"{path}: {'; '.join(problems)} (run python scripts/sync_bundle_configs.py)")
        return 1 if stale else 0
    for path in sync_fragments(BUNDLES):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
