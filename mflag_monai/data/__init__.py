"""Datasets: the built-in demo data, official-layout preparers and datalists.

``python -m mflag_monai.data prepare NAME --root DIR --out DATALIST.json`` prepares a dataset;
``python -m mflag_monai.data demo`` writes the demo data.
"""

from . import mimic  # noqa: F401  (registers the preparer)
from .datalist import load_datalist, resolve_datalist
from .prepare import PREPARERS, PreparedDatalist, get_preparer, register_preparer

__all__ = ["PREPARERS", "PreparedDatalist", "get_preparer", "register_preparer", "load_datalist", "resolve_datalist"]
