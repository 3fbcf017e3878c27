"""MONAI conformance of every bundle in ``bundles/``: one line per bundle and check, exit 1 if any fails.

The checks are those of the MONAI model zoo's ``ci/verify_bundle.py`` (min and full modes), run offline, plus the
workflow properties of each config. For each bundle, in order:

* ``files``        ``configs/metadata.json``, ``LICENSE`` and an inference config (``configs/inference.yaml``) exist,
                   and ``models/model.pt`` (the model zoo's preferred file; its ``verify_bundle.py`` fails without it).
* ``metadata``     ``configs/metadata.json`` has every key MONAI's model zoo expects
                   (docs/method.md#monai-bundle-conventions), a changelog entry for the current version,
                   ``network_data_format`` with an ``image`` input and a ``pred`` output; the package
                   pins agree with the other bundles'; no ``optional_packages_version`` (MONAI 1.6 reads it as a
                   deprecated name of ``required_packages_version`` and replaces that list with it); a
                   ``pretrained_encoder`` declaration names an id of ``train.yaml``.
                   (MONAI's ``verify_metadata`` would download the JSON schema; this check needs no network.)
* ``train``        ``ConfigWorkflow(train.yaml, workflow_type="train").check_properties()`` reports nothing missing.
* ``infer``        the same for ``inference.yaml`` with ``workflow_type="infer"``.
* ``net_in_out``   ``verify_net_in_out`` on ``inference.yaml#network_def`` (as the model zoo runs it).
* ``ckpt_export``  ``ckpt_export`` of ``inference.yaml#network_def`` with ``models/model.pt`` writes a TorchScript model,
                   which must give the eager model's outputs on a random input (and a shipped ``models/model.ts`` must
                   load). Without trained weights the network's random initialisation is exported (the same code path).

A check that cannot run because weights are missing (``models/model.pt``; for ``train`` of the downstream bundles, the
pre-trained encoder their metadata declares) is reported as ``NEEDS  ... needs trained weights: <command that makes
them>`` and does not fail the run: a fresh clone exits 0.

Every workflow gets ``bundle_root`` = the bundle's folder (as the model zoo passes it) unless ``--set bundle_root=...``.

Usage::

    python scripts/check_bundles.py                                   # all bundles, their default (demo) settings
    python scripts/check_bundles.py --bundles segmentation --json conformance.json
    python scripts/check_bundles.py --set image_depth=18 --set image_size=64   # overrides for every workflow
    python scripts/check_bundles.py --set segmentation:dataset_dir=/data/siim      # for one bundle only

The property checks parse the training configs, which prepares the datalists (the demo data is generated on first
use). ``MFLAG_MONAI_DEMO_DIR`` points the demo data elsewhere.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from mflag_monai.utils.io import verify_checksum

REPO = Path(__file__).resolve().parents[1]

METADATA_KEYS = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
    "task", "description", "authors", "copyright", "network_data_format",
)  # fmt: skip
IO_KEYS = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def")
# versions every bundle must state alike (the environment they were tested in)
SHARED_VERSION_KEYS = ("monai_version", "pytorch_version", "numpy_version")
# what the model zoo verifies: the inference config's network_def with models/model.pt
NET_ID, INFERENCE_CONFIGS = "network_def", ("inference.json", "inference.yaml", "inference.yml")


@dataclass
class CheckResult:
    """One bundle's outcome of one check: ``status`` is ``pass``, ``needs`` (weights missing) or ``fail``."""

    bundle: str
    check: str
    ok: bool  # the check did not fail (passed, or could not run for want of trained weights)
    detail: str
    seconds: float
    status: str = "pass"


class NeedsWeights(Exception):
    """A check cannot run until trained weights exist; the message is the command that makes them."""


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (commands a user can paste)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.path.normpath(path)


def train_command(bundle: Path) -> str:
    """The command that trains ``bundle`` (writes its ``models/``)."""
    return f"python -m monai.bundle run training --config_file {_display(bundle / 'configs' / 'train.yaml')}"


def inference_config(bundle: Path) -> Path | None:
    """``configs/inference.{json,yaml,yml}``, as the model zoo looks for it."""
    found = [bundle / "configs" / n for n in INFERENCE_CONFIGS if (bundle / "configs" / n).is_file()]
    return found[0] if found else None


def _with_root(bundle: Path, overrides: dict) -> dict:
    # configs_dir: the bundle's own train.yaml gives an untrained model's settings when outputs go elsewhere
    return {"bundle_root": str(bundle), "configs_dir": str(bundle / "configs"), **overrides}


def check_files(bundle: Path, overrides: dict) -> str:
    """The model zoo's ``verify_bundle_directory``: necessary files, then ``models/model.pt``."""
    missing = [f for f in ("configs/metadata.json", "LICENSE") if not (bundle / f).is_file()]
    if inference_config(bundle) is None:
        missing.append("configs/inference.yaml")
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    model = Path(_with_root(bundle, overrides)["bundle_root"]) / "models" / "model.pt"
    if not model.is_file():
        raise NeedsWeights(train_command(bundle))
    return f"metadata.json, LICENSE, {inference_config(bundle).name}, models/model.pt"  # type: ignore[union-attr]


def check_metadata(configs: Path, others: dict[str, dict] | None = None) -> str:
    """Problems of ``metadata.json`` joined into one message; raises ``ValueError`` when there are any.

    ``others`` maps other bundles' names to their metadata: the package and environment versions must agree.
    """
    meta = json.loads((configs / "metadata.json").read_text())
    problems = [f"missing key {k!r}" for k in METADATA_KEYS if k not in meta]
    if meta.get("version") not in meta.get("changelog", {}):
        problems.append(f"changelog has no entry for version {meta.get('version')!r}")
    if "optional_packages_version" in meta:
        problems.append(
            "optional_packages_version: MONAI reads it as a deprecated name of required_packages_version and "
            "replaces the required list with it; name optional packages in docs/README.md"
        )
    fmt = meta.get("network_data_format", {})
    for side, key in (("inputs", "image"), ("outputs", "pred")):
        entry = fmt.get(side, {}).get(key)
        if entry is None:
            problems.append(f"network_data_format.{side}.{key} missing")
            continue
        problems += [f"network_data_format.{side}.{key}.{k} missing" for k in IO_KEYS if k not in entry]
        # the model zoo's metadata schema types value_range as numbers ([] for unbounded; JSON has no infinity)
        bounds = entry.get("value_range", [])
        if not isinstance(bounds, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in bounds):
            problems.append(f"network_data_format.{side}.{key}.value_range must hold numbers, got {bounds!r}")
    for name, other in (others or {}).items():
        for key in SHARED_VERSION_KEYS:
            if key in other and other[key] != meta.get(key):
                problems.append(f"{key} {meta.get(key)!r} but {other[key]!r} in {name}")
        theirs = other.get("required_packages_version", {})
        for package, version in meta.get("required_packages_version", {}).items():
            if package in theirs and theirs[package] != version:
                problems.append(f"{package}=={version} but =={theirs[package]} in {name}")
    encoder = meta.get("pretrained_encoder")
    if encoder is not None:
        train = configs / "train.yaml"
        config_id = encoder.get("config_id")
        if not config_id or not train.is_file() or config_id not in (_load_config(train) or {}):
            problems.append(f"pretrained_encoder.config_id {config_id!r} is not an id of train.yaml")
    if problems:
        raise ValueError("; ".join(problems))
    pred = fmt["outputs"]["pred"]
    labels = ", ".join(pred["channel_def"].values()) or "none"
    return f"version {meta['version']}, pred: {pred['num_channels']} channel(s) ({labels})"


def _load_config(path: Path) -> dict:
    """The raw content of one config file."""
    from monai.bundle import ConfigParser

    return ConfigParser.load_config_file(str(path))


def _parser(config: Path, meta: Path, overrides: dict):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(config))
    parser.read_meta(str(meta))
    parser.update(overrides)
    return parser


def required_encoder(bundle: Path, overrides: dict) -> Path | None:
    """The pre-trained encoder file ``train.yaml`` would load (``pretrained_encoder`` in metadata.json), or ``None``."""
    configs = bundle / "configs"
    declared = json.loads((configs / "metadata.json").read_text()).get("pretrained_encoder")
    if not declared:
        return None
    value = _parser(configs / "train.yaml", configs / "metadata.json", overrides).get_parsed_content(
        declared["config_id"]
    )
    if value is None or str(value).lower() in ("", "none", "null"):
        return None  # a random encoder, on purpose
    return Path(value)


def check_properties(configs: Path, config: str, workflow_type: str, overrides: dict) -> str:
    """``check_properties()`` of a ``ConfigWorkflow``; raises ``ValueError`` listing missing properties."""
    from monai.bundle import ConfigWorkflow

    if workflow_type == "train":
        encoder = required_encoder(configs.parent, overrides)
        if encoder is not None and not encoder.is_file():
            source = (
                configs.parent.parent
                / json.loads((configs / "metadata.json").read_text())["pretrained_encoder"]["from_bundle"]
            )
            raise NeedsWeights(f"{train_command(source)} (it writes {_display(encoder)})")
    with tempfile.TemporaryDirectory(prefix="check-bundles-") as scratch:
        # the check builds the handlers, and TensorBoard's writer opens an event file at once: it goes to scratch,
        # not the bundle's eval/ (an empty event file there would read as a run)
        scratch_logs = {"log_dir": scratch} if workflow_type == "train" and "log_dir" not in overrides else {}
        workflow = ConfigWorkflow(
            config_file=str(configs / config),
            meta_file=str(configs / "metadata.json"),
            logging_file=str(configs / "logging.conf"),
            workflow_type=workflow_type,
            **{**overrides, **scratch_logs},
        )
        workflow.initialize()
        missing = workflow.check_properties()
    if missing:
        raise ValueError(f"missing properties: {missing}")
    return f"{config}: all {workflow_type} properties present"


def check_net_in_out(bundle: Path, overrides: dict) -> str:
    """MONAI's ``verify_net_in_out`` on the inference config's network (raises on a shape or dtype mismatch)."""
    from monai.bundle import verify_net_in_out

    config = inference_config(bundle)
    if config is None:
        raise ValueError("no inference config")
    verify_net_in_out(
        net_id=NET_ID,
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(config),
        device="cpu",
        **overrides,
    )
    return f"{config.name}#{NET_ID}: input/output channels and dtype as metadata.json says"


def _instantiate(config: Path, meta: Path, net_id: str, overrides: dict) -> torch.nn.Module:
    return _parser(config, meta, overrides).get_parsed_content(net_id)


def check_export(bundle: Path, overrides: dict, atol: float = 1e-4) -> str:
    """``ckpt_export`` to TorchScript, then TorchScript output == eager output on a random input."""
    from monai.bundle import ckpt_export

    config = inference_config(bundle)
    if config is None:
        raise ValueError("no inference config")
    models = Path(overrides["bundle_root"]) / "models"
    trained = models / "model.pt"
    meta_file = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())["network_data_format"]["inputs"]["image"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = trained
        if trained.is_file():
            verify_checksum(trained)  # MONAI's ckpt_export reads the file as it is: refuse damaged weights first
        else:  # fresh clone: export the random initialisation, which tests the same code path
            ckpt = Path(tmp) / "random_init.pt"
            torch.save(_instantiate(config, meta_file, NET_ID, overrides).state_dict(), ckpt)
        script = Path(tmp) / "model.ts"
        ckpt_export(
            net_id=NET_ID,
            filepath=str(script),
            ckpt_file=str(ckpt),
            meta_file=str(meta_file),
            config_file=str(config),
            **overrides,
        )
        eager = _instantiate(config, meta_file, NET_ID, overrides)
        eager.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        eager.eval()
        scripted = torch.jit.load(str(script), map_location="cpu").eval()
        size = overrides.get("image_size")
        spatial = [size, size] if size else meta["spatial_shape"]
        x = torch.rand(2, meta["num_channels"], *spatial) * 2 - 1  # the metadata's value range, [-1, 1]
        with torch.no_grad():
            want, got = eager(x), scripted(x)
    shipped = models / "model.ts"
    if shipped.is_file():  # the model zoo loads a TorchScript model the bundle ships
        torch.jit.load(str(shipped), map_location="cpu")
    error = float((want - got).abs().max())
    if error > atol:
        raise ValueError(f"TorchScript output differs from eager by {error:.2e} (> {atol})")
    source = "trained" if ckpt == trained else "random-init (no models/model.pt yet)"
    return f"{script.name} from the {source} checkpoint; max |TorchScript - eager| = {error:.1e} on {tuple(x.shape)}"


def bundle_overrides(overrides: dict, bundle: str) -> dict:
    """The overrides that apply to ``bundle``: plain ``key`` ones, then ``bundle:key`` ones (which win)."""
    common = {k: v for k, v in overrides.items() if ":" not in k}
    specific = {k.split(":", 1)[1]: v for k, v in overrides.items() if k.startswith(f"{bundle}:")}
    return {**common, **specific}


def describe_error(err: BaseException, limit: int = 600) -> str:
    """The error's first line and, when it wraps another (MONAI's "Failed to instantiate component ..."), the first
    line of the innermost cause: what went wrong, not only where."""
    text = f"{type(err).__name__}: {err}".splitlines()[0]
    root, seen = err, {id(err)}
    while (root.__cause__ or root.__context__) is not None and id(root.__cause__ or root.__context__) not in seen:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
        seen.add(id(root))
    if root is not err:
        text += f" <- {type(root).__name__}: {str(root).strip().splitlines()[0] if str(root).strip() else ''}"
    return text[:limit]


def run_checks(
    bundles: list[Path], overrides: dict, report: Callable[[CheckResult], None] = print
) -> list[CheckResult]:
    """Every check for every bundle; each result is passed to ``report`` as soon as it is known.

    ``overrides`` are config values for every workflow; keys written ``bundle:key`` apply to that bundle only.
    """
    results = []
    metadata = {b.name: json.loads((b / "configs" / "metadata.json").read_text()) for b in bundles}
    for bundle in bundles:
        own = _with_root(bundle, bundle_overrides(overrides, bundle.name))
        configs = bundle / "configs"
        others = {name: meta for name, meta in metadata.items() if name != bundle.name}
        checks: list[tuple[str, Callable[[], str]]] = [
            ("files", partial(check_files, bundle, own)),
            ("metadata", partial(check_metadata, configs, others)),
            ("train", partial(check_properties, configs, "train.yaml", "train", own)),
        ]
        infer = inference_config(bundle)
        if infer is not None:
            checks.append(("infer", partial(check_properties, configs, infer.name, "infer", own)))
        checks += [
            ("net_in_out", partial(check_net_in_out, bundle, own)),
            ("ckpt_export", partial(check_export, bundle, own)),
        ]
        for name, check in checks:
            start = time.perf_counter()
            try:
                status, detail = "pass", check()
            except NeedsWeights as need:
                status, detail = "needs", f"needs trained weights: {need}"
            except Exception as err:  # noqa: BLE001 - a failed check is reported, and the others still run
                status, detail = "fail", describe_error(err)
                traceback.print_exc(file=sys.stderr)
            seconds = round(time.perf_counter() - start, 2)
            result = CheckResult(bundle.name, name, status != "fail", detail, seconds, status)
            results.append(result)
            report(result)
    return results


def format_result(result: CheckResult) -> str:
    """``PASS  segmentation  ckpt_export  (3.1 s)  detail`` (``NEEDS`` or ``FAIL`` in place of ``PASS``)."""
    return (
        f"{result.status.upper():<5} {result.bundle:<15} {result.check:<12} ({result.seconds:5.1f} s)  {result.detail}"
    )


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
    parser.add_argument(
        "--bundles", nargs="*", help="bundle names (default: every folder of bundles/ with configs/metadata.json)"
    )
    parser.add_argument("--bundles-dir", type=Path, default=REPO / "bundles")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_parse_override,
        default=[],
        metavar="KEY=VALUE",
        help="config override for every workflow, or BUNDLE:KEY=VALUE for one bundle (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    available = sorted(p.parent.parent for p in args.bundles_dir.glob("*/configs/metadata.json"))
    bundles = [b for b in available if not args.bundles or b.name in args.bundles]
    unknown = set(args.bundles or []) - {b.name for b in bundles}
    if unknown:
        parser.error(f"no such bundle(s): {sorted(unknown)}; available: {[b.name for b in available]}")
    overrides = dict(args.overrides)
    results = run_checks(bundles, overrides, report=lambda r: print(format_result(r), flush=True))
    failed = [r for r in results if r.status == "fail"]
    waiting = [r for r in results if r.status == "needs"]
    passed = len(results) - len(failed) - len(waiting)
    print(
        f"{passed}/{len(results)} checks passed, {len(waiting)} need trained weights, {len(failed)} failed, over {len(bundles)} bundle(s)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"overrides": {k: repr(v) for k, v in overrides.items()}, "results": [asdict(r) for r in results]},
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
