"""Coded concepts shared by the SEG and SR writers: which code stands for which finding name.

Every SNOMED CT (``SCT``) and DICOM (``DCM``) code below is spelled as pydicom's code dictionary
(``pydicom.sr.codedict.codes``) holds it, except the three marked *not in pydicom's dictionary*: those are SNOMED CT
concept identifiers of the disorders themselves, written out by hand (the dictionary only holds concepts that a DICOM
context group lists). ``tests/dicom`` checks the others against the dictionary, so a typo cannot slip in.
"""

from __future__ import annotations

import re

from pydicom.sr.coding import Code

__all__ = [
    "FINDING_CATEGORY",
    "FINDING_CODES",
    "GENERIC_FINDING",
    "IMAGING_PROCEDURE",
    "ABSENT",
    "PRESENT",
    "PROBABILITY",
    "THRESHOLD",
    "UNITLESS",
    "finding_code",
    "normalise_finding_name",
]

_OPACITY = Code("112001", "DCM", "Opacity")  # CID 6102/6104 (chest radiograph findings)
_INFILTRATE = Code("112121", "DCM", "Infiltrate")  # CID 6102/6104
_PLEURAL_EFFUSION = Code("60046008", "SCT", "Pleural effusion")
_PULMONARY_EDEMA = Code("19242006", "SCT", "Pulmonary edema")

#: Finding name (lower case, ``_``/``-`` read as spaces) -> the code of its segment property type / finding type.
#: The names cover the bundles' label sets (SIIM pneumothorax, RSNA opacity, CheXpert, ChestX-ray14) where a code
#: fits; other names get :data:`GENERIC_FINDING` and keep their own text as the segment label / tracking identifier.
FINDING_CODES: dict[str, Code] = {
    "pneumothorax": Code("36118008", "SCT", "Pneumothorax"),
    "pneumonia": Code("233604007", "SCT", "Pneumonia"),  # not in pydicom's dictionary: SNOMED CT Pneumonia (disorder)
    # RSNA's "lung opacity" and CheXpert's "Lung Opacity": DICOM's chest-radiograph opacity finding
    "opacity": _OPACITY,
    "lung opacity": _OPACITY,
    "infiltrate": _INFILTRATE,
    "infiltration": _INFILTRATE,  # ChestX-ray14's spelling
    "pleural effusion": _PLEURAL_EFFUSION,
    "effusion": _PLEURAL_EFFUSION,  # ChestX-ray14's spelling: the pleural effusion of a chest film
    "cardiomegaly": Code("287272002", "SCT", "Cardiomegaly"),
    "edema": _PULMONARY_EDEMA,  # CheXpert's and ChestX-ray14's "Edema" is the lungs'
    "pulmonary edema": _PULMONARY_EDEMA,
    "nodule": Code("27925004", "SCT", "Nodule"),
    "mass": Code("4147007", "SCT", "Mass"),  # the morphologic "Mass" of CID 7151 (118538004 is mass, the quantity)
    "atelectasis": Code("46621007", "SCT", "Atelectasis"),  # not in pydicom's dictionary
    "consolidation": Code("95436008", "SCT", "Lung consolidation"),  # not in pydicom's dictionary
}

#: The code of a finding name missing from :data:`FINDING_CODES` (SNOMED CT "Finding", i.e. clinical finding).
GENERIC_FINDING = Code("404684003", "SCT", "Finding")

#: Segment property category and measurement-group finding category (CID 7150 "Segmentation Property Categories").
FINDING_CATEGORY = Code("49755003", "SCT", "Morphologically Abnormal Structure")

#: TID 1500 "Procedure reported" (CID 100): the generic imaging procedure, as no code names a projection chest film.
IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging procedure")

#: The model's output for a finding or a box.
PROBABILITY = Code("122157", "DCM", "Probability")
#: The cut-off the probability was compared against.
THRESHOLD = Code("122411", "DCM", "Threshold Value")
#: UCUM's dimensionless unit, for both.
UNITLESS = Code("1", "UCUM", "no units")
#: Qualitative evaluation of a finding at its threshold (CID 240/241 "Present"/"Absent").
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("272519000", "SCT", "Absent")


def normalise_finding_name(name: str) -> str:
    """The key of ``name`` in :data:`FINDING_CODES`: lower case, ``_`` and ``-`` as spaces, runs of spaces as one."""
    return re.sub(r"\s+", " ", re.sub(r"[_-]", " ", name)).strip().lower()


def finding_code(name: str) -> Code:
    """The code of finding ``name`` (e.g. ``"Pneumothorax"``, ``"Lung Opacity"``, ``"pleural_effusion"``), or
    :data:`GENERIC_FINDING` for a name the table does not know."""
    return FINDING_CODES.get(normalise_finding_name(name), GENERIC_FINDING)
