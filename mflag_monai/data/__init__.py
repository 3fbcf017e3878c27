"""Datasets, in three rooms:

* :mod:`.prepare`: dataset preparation, one module per public dataset (official layout → MONAI datalist JSON),
  with the preparer registry, label sets, splits and the datalist checker;
* :mod:`.demo`: the built-in synthetic demo data (phantom radiographs written in the public datasets' formats);
* here: what training reads at run time: :mod:`.datalist` (finding or making a bundle's datalist),
  :mod:`.dataset` (MONAI datasets and caches, bad-image skipping), :mod:`.text_features` (cached report features).

``python -m mflag_monai.data prepare NAME --root DIR --out DATALIST.json`` prepares a dataset;
``python -m mflag_monai.data demo`` writes the demo data (``--layout iu-xray|iu-xray-csv|chexpert-plus --out DIR``: the
public image–report collections' layouts).

``mflag_monai.data.demo`` is imported on first use (it needs pydicom and PIL to write files), so that importing the
package stays light.
"""

import importlib
from typing import Any

from . import prepare
from .datalist import list_images, load_datalist, merge_datalists, resolve_datalist
from .dataset import (
    CACHE_MODES,
    SkipBadImages,
    build_dataset,
    build_eval_dataset,
    collate_fn,
    skip_none_collate,
    skip_none_list,
)
from .prepare import (
    PREPARERS,
    DatalistError,
    DatalistReport,
    DatalistSchema,
    PreparedDatalist,
    check_datalist,
    get_preparer,
    register_preparer,
)
from .text_features import TextFeatureCache, build_text_feature_cache, text_key, text_model_identity

__all__ = [
    "CACHE_MODES",
    "PREPARERS",
    "DatalistError",
    "DatalistReport",
    "DatalistSchema",
    "PreparedDatalist",
    "SkipBadImages",
    "TextFeatureCache",
    "build_dataset",
    "build_eval_dataset",
    "build_text_feature_cache",
    "check_datalist",
    "collate_fn",
    "get_preparer",
    "list_images",
    "load_datalist",
    "merge_datalists",
    "prepare",
    "register_preparer",
    "resolve_datalist",
    "skip_none_collate",
    "skip_none_list",
    "text_key",
    "text_model_identity",
]


def __getattr__(name: str) -> Any:
    """``mflag_monai.data.demo`` (as bundle expressions write it) imports the demo package on first access."""
    if name == "demo":
        return importlib.import_module(".demo", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
