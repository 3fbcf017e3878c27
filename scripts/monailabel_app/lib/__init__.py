"""Infer and train tasks that serve the mflag-monai bundles through MONAI Label (see ``scripts/monailabel_app/README.md``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Bundle settings a server start may override (``--conf image_size 224``): the served model must have been
# trained with the same values, and MONAI Label reads the bundle's inference.yaml as it is.
BUNDLE_CONF_KEYS = ("image_size", "image_depth")


def bundle_overrides(conf: Mapping[str, str]) -> dict[str, Any]:
    """The bundle config overrides named in the app's ``--conf`` pairs, with JSON types (``"224"`` -> ``224``)."""
    if conf.get("encoder_depth"):  # renamed: without this, the old key would be silently ignored
        raise ValueError("--conf encoder_depth is renamed: use --conf image_depth")
    overrides = {}
    for key in BUNDLE_CONF_KEYS:
        value = conf.get(key)
        if value is None or value == "":
            continue
        try:
            overrides[key] = json.loads(value)
        except (TypeError, ValueError):
            overrides[key] = value  # a plain string
    return overrides


def apply_overrides(parser: Any, overrides: Mapping[str, Any]) -> Any:
    """Set each override in a ``monai.bundle.ConfigParser`` whose config has that id; return the parser."""
    for key, value in overrides.items():
        if key in parser:  # a key the bundle does not use is ignored rather than invented
            parser[key] = value
    return parser


def as_compose(parser: Any, key: str) -> Any:
    """Wrap a single-transform ``key`` (e.g. ``postprocessing: {_target_: Activationsd}``) in a ``Compose``.

    MONAI Label iterates the bundle's pre/postprocessing unless it is a ``Compose``; one bare transform is valid
    for the bundle's own evaluator but fails there.
    """
    if key in parser:
        value = parser[key]
        if isinstance(value, dict) and str(value.get("_target_", "")).split(".")[-1] != "Compose":
            parser[key] = {"_target_": "Compose", "transforms": [value]}
    return parser
