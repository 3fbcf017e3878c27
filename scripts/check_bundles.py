"""MONAI conformance of every bundle in ``bundles/``: one line per bundle and check, exit 1 if any fails.

Checks, in order, for each bundle:

* ``metadata``     ``configs/metadata.json`` has every key MONAI's model zoo expects (SPEC §5), a changelog entry for the
                   current version, and ``network_data_format`` with an ``image`` input and a ``pred`` output.
                   (MONAI's ``verify_metadata`` would download the JSON schema; this check needs no network.)
* ``train``        ``ConfigWorkflow(train.yaml, workflow_type="train").check_properties()`` reports nothing missing.
* ``infer``        the same for ``inference.yaml`` with ``workflow_type="infer"`` (bundles that have one).
* ``net_in_out``   ``python -m monai.bundle verify_net_in_out`` on the network the bundle exports.
* ``ckpt_export``  ``python -m monai.bundle ckpt_export`` writes a TorchScript model, which must give the eager model's
                   outputs on a random input. The checkpoint is the bundle's trained one when it exists, otherwise
                   the network's random initialisation (saved to a temporary file), so the check runs on a fresh clone.

Usage::

    python scripts/check_bundles.py                                   # all bundles, their default (demo) settings
    python scripts/check_bundles.py --bundles segmentation --json conformance.json
    python scripts/check_bundles.py --set encoder_depth=18 --set image_size=64   # overrides for every workflow
    python scripts/check_bundles.py --set segmentation:dataset_dir=/data/siim      # for one bundle only

The property checks parse the training configs, which prepares the datalists (the demo data is generated on first
use). ``MFLAG_MONAI_DEMO_DIR`` points the demo data elsewhere.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

METADATA_KEYS = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
    "task", "description", "authors", "copyright", "network_data_format",
)  # fmt: skip
IO_KEYS = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def")

# The network each bundle exports, and the config that defines it (inference.yaml where there is one: it needs no
# encoder file). The pre-training bundle exports its image encoder, the artefact the downstream bundles consume.
EXPORTS = {"pretrain": ("train.yaml", "encoder_def", "encoder.pt")}
DEFAULT_EXPORT = ("inference.yaml", "network_def", "model.pt")


@dataclass
class CheckResult:
    """One bundle's outcome of one check."""

    bundle: str
    check: str
    ok: bool
    detail: str
    seconds: float


def check_metadata(configs: Path) -> str:
    """Problems of ``metadata.json`` joined into one message; raises ``ValueError`` when there are any."""
    meta = json.loads((configs / "metadata.json").read_text())
    problems = [f"missing key {k!r}" for k in METADATA_KEYS if k not in meta]
    if meta.get("version") not in meta.get("changelog", {}):
        problems.append(f"changelog has no entry for version {meta.get('version')!r}")
    fmt = meta.get("network_data_format", {})
    for side, key in (("inputs", "image"), ("outputs", "pred")):
        entry = fmt.get(side, {}).get(key)
        if entry is None:
            problems.append(f"network_data_format.{side}.{key} missing")
            continue
        problems += [f"network_data_format.{side}.{key}.{k} missing" for k in IO_KEYS if k not in entry]
    if problems:
        raise ValueError("; ".join(problems))
    pred = fmt["outputs"]["pred"]
    labels = ", ".join(pred["channel_def"].values()) or "none"
    return f"version {meta['version']}, pred: {pred['num_channels']} channel(s) ({labels})"


def check_properties(configs: Path, config: str, workflow_type: str, overrides: dict) -> str:
    """``check_properties()`` of a ``ConfigWorkflow``; raises ``ValueError`` listing missing properties."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(configs / config),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    workflow.initialize()
    missing = workflow.check_properties()
    if missing:
        raise ValueError(f"missing properties: {missing}")
    return f"{config}: all {workflow_type} properties present"


def _export_target(bundle: Path, overrides: dict) -> tuple[Path, str, Path]:
    """(config file, network id, trained checkpoint path); a ``bundle_root`` override moves the checkpoint."""
    config, net_id, ckpt = EXPORTS.get(bundle.name, DEFAULT_EXPORT)
    root = Path(overrides.get("bundle_root") or bundle)
    return bundle / "configs" / config, net_id, root / "models" / ckpt


def check_net_in_out(bundle: Path, overrides: dict) -> str:
    """MONAI's ``verify_net_in_out`` on the exported network (raises on a shape or dtype mismatch)."""
    from monai.bundle import verify_net_in_out

    config, net_id, _ = _export_target(bundle, overrides)
    verify_net_in_out(net_id=net_id, meta_file=str(bundle / "configs" / "metadata.json"), config_file=str(config), device="cpu", **overrides)
    return f"{config.name}#{net_id}: input/output channels and dtype as metadata.json says"


def _instantiate(config: Path, meta: Path, net_id: str, overrides: dict) -> torch.nn.Module:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(config))
    parser.read_meta(str(meta))
    parser.update(overrides)
    return parser.get_parsed_content(net_id)


def check_export(bundle: Path, overrides: dict, atol: float = 1e-4) -> str:
    """``ckpt_export`` to TorchScript, then TorchScript output == eager output on a random input."""
    from monai.bundle import ckpt_export

    config, net_id, trained = _export_target(bundle, overrides)
    meta_file = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())["network_data_format"]["inputs"]["image"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = trained
        if not trained.is_file():  # fresh clone: export the random initialisation, which tests the same code path
            ckpt = Path(tmp) / "random_init.pt"
            torch.save(_instantiate(config, meta_file, net_id, overrides).state_dict(), ckpt)
        script = Path(tmp) / "model.ts"
        ckpt_export(net_id=net_id, filepath=str(script), ckpt_file=str(ckpt), meta_file=str(meta_file), config_file=str(config), **overrides)
        eager = _instantiate(config, meta_file, net_id, overrides)
        eager.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        eager.eval()
        scripted = torch.jit.load(str(script), map_location="cpu").eval()
        size = overrides.get("image_size")
        spatial = [size, size] if size else meta["spatial_shape"]
        x = torch.rand(2, meta["num_channels"], *spatial) * 2 - 1  # the metadata's value range, [-1, 1]
        with torch.no_grad():
            want, got = eager(x), scripted(x)
    error = float((want - got).abs().max())
    if error > atol:
        raise ValueError(f"TorchScript output differs from eager by {error:.2e} (> {atol})")
    source = "trained" if ckpt == trained else "random-init"
    return f"{script.name} from the {source} checkpoint; max |TorchScript - eager| = {error:.1e} on {tuple(x.shape)}"


def bundle_overrides(overrides: dict, bundle: str) -> dict:
    """The overrides that apply to ``bundle``: plain ``key`` ones, then ``bundle:key`` ones (which win)."""
    common = {k: v for k, v in overrides.items() if ":" not in k}
    specific = {k.split(":", 1)[1]: v for k, v in overrides.items() if k.startswith(f"{bundle}:")}
    return {**common, **specific}


def run_checks(bundles: list[Path], overrides: dict, report: Callable[[CheckResult], None] = print) -> list[CheckResult]:
    """Every check for every bundle; each result is passed to ``report`` as soon as it is known.

    ``overrides`` are config values for every workflow; keys written ``bundle:key`` apply to that bundle only.
    """
    results = []
    for bundle in bundles:
        own = bundle_overrides(overrides, bundle.name)
        configs = bundle / "configs"
        checks: list[tuple[str, Callable[[], str]]] = [
            ("metadata", lambda: check_metadata(configs)),
            ("train", lambda: check_properties(configs, "train.yaml", "train", own)),
        ]
        if (configs / "inference.yaml").is_file():
            checks.append(("infer", lambda: check_properties(configs, "inference.yaml", "infer", own)))
        checks += [("net_in_out", lambda: check_net_in_out(bundle, own)), ("ckpt_export", lambda: check_export(bundle, own))]
        for name, check in checks:
            start = time.perf_counter()
            try:
                ok, detail = True, check()
            except Exception as err:  # a failed check is reported, and the others still run
                ok, detail = False, f"{type(err).__name__}: {err}".splitlines()[0][:400]
                traceback.print_exc(file=sys.stderr)
            result = CheckResult(bundle.name, name, ok, detail, round(time.perf_counter() - start, 2))
            results.append(result)
            report(result)
    return results


def format_result(result: CheckResult) -> str:
    """``PASS  segmentation  ckpt_export  (3.1 s)  detail``."""
    return f"{'PASS' if result.ok else 'FAIL'}  {result.bundle:<15} {result.check:<12} ({result.seconds:5.1f} s)  {result.detail}"


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set wants KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string (a path, a name)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns 0 when every check passes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", nargs="*", help="bundle names (default: every folder of bundles/ with configs/metadata.json)")
    parser.add_argument("--bundles-dir", type=Path, default=REPO / "bundles")
    parser.add_argument("--set", dest="overrides", action="append", type=_parse_override, default=[], metavar="KEY=VALUE", help="config override for every workflow, or BUNDLE:KEY=VALUE for one bundle (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    available = sorted(p.parent.parent for p in args.bundles_dir.glob("*/configs/metadata.json"))
    bundles = [b for b in available if not args.bundles or b.name in args.bundles]
    unknown = set(args.bundles or []) - {b.name for b in bundles}
    if unknown:
        parser.error(f"no such bundle(s): {sorted(unknown)}; available: {[b.name for b in available]}")
    overrides = dict(args.overrides)
    results = run_checks(bundles, overrides, report=lambda r: print(format_result(r), flush=True))
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed over {len(bundles)} bundle(s)")
    if args.json:
        args.json.write_text(json.dumps({"overrides": {k: repr(v) for k, v in overrides.items()}, "results": [asdict(r) for r in results]}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
