"""Datasets: the built-in demo data, official-layout preparers, datalists, caches.

``python -m mflag_monai.data prepare NAME --root DIR --out DATALIST.json`` prepares a dataset;
``python -m mflag_monai.data demo`` writes the demo data (``--layout iu-xray|iu-xray-csv|chexpert-plus --out DIR``: the
public image–report collections' layouts).
"""

from . import demo  # noqa: F401
from . import mimic  # noqa: F401  (registers the preparer)
from . import rsna  # noqa: F401
from . import siim  # noqa: F401
from . import chexpert  # noqa: F401
from . import covidx  # noqa: F401
from . import nih  # noqa: F401
from . import object_cxr  # noqa: F401
from . import mimic_labels  # noqa: F401
from . import iu_xray  # noqa: F401
from . import chexpert_plus  # noqa: F401
from .check import DatalistError, DatalistReport, DatalistSchema, check_datalist
from .datalist import list_images, load_datalist, merge_datalists, resolve_datalist
from .dataset import CACHE_MODES, SkipBadImages, build_dataset, build_eval_dataset, skip_none_collate, skip_none_list
from .prepare import PREPARERS, PreparedDatalist, get_preparer, register_preparer
from .text_features import TextFeatureCache, build_text_feature_cache, text_key, text_model_identity

__all__ = [
    "PREPARERS",
    "PreparedDatalist",
    "get_preparer",
    "register_preparer",
    "load_datalist",
    "resolve_datalist",
    "merge_datalists",
    "check_datalist",
    "DatalistReport",
    "DatalistError",
    "DatalistSchema",
    "list_images",
    "CACHE_MODES",
    "build_dataset",
    "build_eval_dataset",
    "SkipBadImages",
    "skip_none_collate",
    "skip_none_list",
    "TextFeatureCache",
    "build_text_feature_cache",
    "text_key",
    "text_model_identity",
]
