"""Dataset preparation: each public dataset's official layout turned into a MONAI datalist JSON.

* :mod:`.registry`: the preparer registry (``register_preparer``, ``get_preparer``) and :class:`PreparedDatalist`.
* One module per dataset, each registering its preparer: :mod:`.mimic` (MIMIC-CXR reports), :mod:`.mimic_labels`
  (MIMIC-CXR CheXpert labels), :mod:`.chexpert`, :mod:`.chexpert_plus`, :mod:`.iu_xray`, :mod:`.nih`, :mod:`.rsna`,
  :mod:`.siim`, :mod:`.covidx`, :mod:`.object_cxr`.
* Shared pieces: :mod:`.labels` (label sets, uncertainty policies, classification tasks), :mod:`.splits` (seeded and
  stratified splits, masks), :mod:`.rle` (SIIM run-length masks), :mod:`.check` (the datalist checker).
* :mod:`.cli`: the ``prepare`` and ``check`` sub-commands of ``python -m mflag_monai.data``.
"""

# Importing a dataset module registers its preparer.
from . import (
    chexpert,  # noqa: F401
    chexpert_plus,  # noqa: F401
    covidx,  # noqa: F401
    iu_xray,  # noqa: F401
    mimic,  # noqa: F401
    mimic_labels,  # noqa: F401
    nih,  # noqa: F401
    object_cxr,  # noqa: F401
    rsna,  # noqa: F401
    siim,  # noqa: F401
)
from .check import DatalistError, DatalistReport, DatalistSchema, check_datalist
from .registry import PREPARERS, PreparedDatalist, get_preparer, register_preparer

__all__ = [
    "PREPARERS",
    "DatalistError",
    "DatalistReport",
    "DatalistSchema",
    "PreparedDatalist",
    "check_datalist",
    "get_preparer",
    "register_preparer",
]
