"""The built-in demo data: small synthetic versions of the public data sets, on disk in their
official formats (docs/method.md#dataset-formats), so that every preparer, bundle and test runs without them.

Every image is a :mod:`~mflag_monai.data.demo.phantom` radiograph, and every label, report
sentence, box and mask is derived from what that phantom drew. Four data sets are written
under one root::

    <root>/demo.json                  generator parameters, DEMO_VERSION, a summary
    <root>/mimic-cxr/                 MIMIC-CXR (DICOM + reports + the three CSVs)
    <root>/chexpert/                  CheXpert-v1.0-small (JPG + train.csv / valid.csv)
    <root>/rsna-pneumonia/            RSNA Pneumonia (DICOM + stage_2_* CSVs)
    <root>/siim-pneumothorax/         SIIM-ACR Pneumothorax (DICOM tree + train-rle.csv)

The two public image–report collections are written on request, each under its own root:
:func:`write_iu_xray_demo` (IU X-ray, Open-i XML or the CSV redistribution) and
:func:`write_chexpert_plus_demo` (CheXpert Plus).

Generation is deterministic: the same arguments give byte-identical files (UIDs, dates and
names all come from the seed; nothing depends on the clock). Run it as a script with
``python -m mflag_monai.data.demo --out DIR``.

Modules: :mod:`.api` (``generate_demo_data``, ``ensure_demo_data``, the command line), :mod:`.phantom` (the
radiograph renderer), :mod:`.reports` (report sentences and labels), one writer per data set mirroring
:mod:`mflag_monai.data.prepare` (:mod:`.mimic`, :mod:`.chexpert`, :mod:`.rsna`, :mod:`.siim`, :mod:`.iu_xray`,
:mod:`.chexpert_plus`; RSNA and SIIM share :mod:`.square`), :mod:`.dicom_writer` and :mod:`.common`.
"""

from .api import DEMO_COUNTS, default_demo_dir, ensure_demo_data, format_summary, generate_demo_data, main
from .chexpert import CHEXPERT_LABELS
from .chexpert_plus import CHEXPERT_PLUS_CSV, write_chexpert_plus_demo
from .common import DATASET_DIRS, DEMO_VERSION
from .iu_xray import IU_LAYOUTS, write_iu_xray_demo
from .reports import MIMIC_LABELS

__all__ = [
    "CHEXPERT_LABELS",
    "CHEXPERT_PLUS_CSV",
    "DATASET_DIRS",
    "DEMO_COUNTS",
    "DEMO_VERSION",
    "IU_LAYOUTS",
    "MIMIC_LABELS",
    "default_demo_dir",
    "ensure_demo_data",
    "format_summary",
    "generate_demo_data",
    "main",
    "write_chexpert_plus_demo",
    "write_iu_xray_demo",
]
