"""DICOM outputs of the downstream models: segmentation masks as DICOM SEG, classification probabilities and
detection boxes as DICOM SR (TID 1500 Measurement Reports), each referencing the radiograph it was computed on, and
readers that give back what was written.

* :func:`write_seg` / :func:`read_seg`: ``{finding: mask}`` <-> a BINARY SEG, one segment per finding;
* :func:`write_classification_sr` / :func:`read_classification_sr`: ``[{label, probability, threshold}]``;
* :func:`write_detection_sr` / :func:`read_detection_sr`: ``[{label, score, box}]``;
* :mod:`.codes`: the SNOMED CT / DICOM codes of finding names (:data:`FINDING_CODES`, :func:`finding_code`).
"""

from .codes import FINDING_CODES, finding_code
from .seg import read_seg, write_seg
from .sr import read_classification_sr, read_detection_sr, write_classification_sr, write_detection_sr

__all__ = [
    "FINDING_CODES",
    "finding_code",
    "read_classification_sr",
    "read_detection_sr",
    "read_seg",
    "write_classification_sr",
    "write_detection_sr",
    "write_seg",
]

# DICOMweb in and out (:mod:`.web`): dicomweb-client is imported by the functions, so this import costs nothing
from .web import fetch_instances, find_instances, store_instances  # noqa: E402

__all__ += ["fetch_instances", "find_instances", "store_instances"]

# One run's results and inputs (:mod:`.results`), as the bundles' inference configs use them
from .results import DicomResults, fetch_inputs  # noqa: E402

__all__ += ["DicomResults", "fetch_inputs"]
