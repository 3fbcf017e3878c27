"""Report text that describes what a phantom drew: FINDINGS and IMPRESSION sentences, each with the labels a
CheXpert-style labeller would read from it, merged into a study's labels, laid out as a MIMIC-CXR free-text report.
"""

from __future__ import annotations

import textwrap

import numpy as np

from .common import pick, render_frontal, sample_case
from .phantom import PhantomFindings

__all__ = ["MIMIC_LABELS", "collection_report", "format_report", "merge_labels", "report_sentences"]


#: The 14 CheXpert labels in the column order of ``mimic-cxr-2.0.0-chexpert.csv`` (alphabetical).
MIMIC_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
    "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
)  # fmt: skip


# Report sentences. Each builder returns (text, {label: value}); labels follow the
# CheXpert labeller: 1.0 positive, 0.0 negated, -1.0 uncertain, absent = not mentioned.
_Sentence = tuple[str, dict[str, float]]
_LOBE = {
    ("right", "upper"): ["right upper lobe", "right upper lung"],
    ("right", "middle"): ["right middle lobe", "right mid lung"],
    ("right", "lower"): ["right lower lobe", "right base"],
    ("left", "upper"): ["left upper lobe", "left upper lung"],
    ("left", "middle"): ["lingula", "left mid lung"],
    ("left", "lower"): ["left lower lobe", "left base"],
}
_SIZE_WORD = {"small": ["small", "small"], "moderate": ["moderate", "moderate-sized"], "large": ["large", "large"]}


def _sides_phrase(sides: tuple[str, ...]) -> str:
    return "bilateral" if len(sides) == 2 else sides[0]


def _effusion_sentences(rng: np.random.Generator, f: PhantomFindings, hedge: bool) -> tuple[_Sentence, _Sentence]:
    """(findings sentence, impression sentence) for a drawn effusion."""
    sides, size = f.effusion, f.effusion_size
    where = _sides_phrase(sides)
    plural = "effusions" if len(sides) == 2 else "effusion"
    if hedge and size == "small":
        angle = "angles" if len(sides) == 2 else "angle"
        text = pick(rng, [
            f"Blunting of the {where} costophrenic {angle} may reflect small {plural}.",
            f"Possible small {where} pleural {plural}.",
        ])  # fmt: skip
        uncertain = {"Pleural Effusion": -1.0}
        return (text, uncertain), (f"Possible small {where} pleural {plural}.", uncertain)
    word = pick(rng, _SIZE_WORD[size])
    text = pick(rng, [
        f"{word.capitalize()} {where} pleural {plural}.",
        f"There {'are' if len(sides) == 2 else 'is a'} {word} {where} pleural {plural}.",
        f"{word.capitalize()} {where} pleural {plural} with blunting of the costophrenic "
        f"angle{'s' if len(sides) == 2 else ''}.",
    ])  # fmt: skip
    positive = {"Pleural Effusion": 1.0}
    return (text, positive), (f"{word.capitalize()} {where} pleural {plural}.", positive)


def _pneumothorax_sentences(rng: np.random.Generator, f: PhantomFindings, hedge: bool) -> tuple[_Sentence, _Sentence]:
    sides, size = f.pneumothorax, f.pneumothorax_size
    where = _sides_phrase(sides)
    noun = "pneumothoraces" if len(sides) == 2 else "pneumothorax"
    if hedge and size == "small":
        text = pick(rng, [
            f"Possible small {where} apical {noun}.",
            f"A small {where} apical {noun} cannot be excluded.",
        ])  # fmt: skip
        return (text, {"Pneumothorax": -1.0}), (f"Possible small {where} apical {noun}.", {"Pneumothorax": -1.0})
    word = pick(rng, _SIZE_WORD[size])
    text = pick(rng, [
        f"{word.capitalize()} {where} apical {noun}.",
        f"There is a {word} {where} {noun} with a visible pleural line." if len(sides) == 1
        else f"{word.capitalize()} bilateral {noun}, with visible pleural lines.",
        f"{word.capitalize()} {where} {noun} extending along the lateral chest wall.",
    ])  # fmt: skip
    return (text, {"Pneumothorax": 1.0}), (f"{word.capitalize()} {where} {noun}.", {"Pneumothorax": 1.0})


def _consolidation_sentences(
    rng: np.random.Generator, f: PhantomFindings, hedge: bool
) -> tuple[list[_Sentence], list[_Sentence]]:
    found, impression = [], []
    for c in f.consolidations:
        loc = pick(rng, _LOBE[(c.side, c.zone)])
        if hedge:
            found.append(pick(rng, [
                (f"There is a patchy opacity in the {loc}, which may represent pneumonia.",
                 {"Lung Opacity": 1.0, "Pneumonia": -1.0}),
                (f"Focal consolidation in the {loc}, concerning for pneumonia.",
                 {"Consolidation": 1.0, "Pneumonia": -1.0}),
            ]))  # fmt: skip
            impression.append((f"{loc.capitalize()} opacity; pneumonia cannot be excluded.",
                               {"Lung Opacity": 1.0, "Pneumonia": -1.0}))  # fmt: skip
        else:
            found.append(pick(rng, [
                (f"Focal consolidation in the {loc}, consistent with pneumonia.",
                 {"Consolidation": 1.0, "Pneumonia": 1.0}),
                (f"Airspace opacity in the {loc} compatible with pneumonia.",
                 {"Lung Opacity": 1.0, "Pneumonia": 1.0}),
                (f"There is a dense consolidation in the {loc}.", {"Consolidation": 1.0}),
            ]))  # fmt: skip
            impression.append((f"{loc.capitalize()} pneumonia.", {"Pneumonia": 1.0, "Lung Opacity": 1.0}))
    return found, impression


def _nodule_sentences(rng: np.random.Generator, f: PhantomFindings) -> tuple[list[_Sentence], list[_Sentence]]:
    """Findings and impression sentences for drawn nodules (CheXpert: Lung Lesion)."""
    found, impression = [], []
    for n in f.nodules:
        loc = pick(rng, _LOBE[(n.side, n.zone)])
        size = f"{n.diameter_mm / 10:.1f} cm" if rng.random() < 0.5 else f"{n.diameter_mm} mm"
        found.append(pick(rng, [
            (f"A {size} nodule is seen in the {loc}.", {"Lung Lesion": 1.0}),
            (f"There is a {size} rounded opacity in the {loc}, likely a pulmonary nodule.", {"Lung Lesion": 1.0}),
            (f"Well-circumscribed {size} nodular opacity projecting over the {loc}.", {"Lung Lesion": 1.0}),
        ]))  # fmt: skip
    if f.nodules:
        where = _LOBE[(f.nodules[0].side, f.nodules[0].zone)][0]
        noun = "nodules" if len(f.nodules) > 1 else "nodule"
        impression.append((f"Pulmonary {noun}, the largest in the {where}; recommend chest CT.", {"Lung Lesion": 1.0}))
    return found, impression


_DEVICE_TEXT = {
    "ett": [
        "Endotracheal tube terminates approximately {n} cm above the carina.",
        "The endotracheal tube tip is {n} cm above the carina.",
    ],
    "enteric": [
        "An enteric tube courses below the diaphragm with the tip in the stomach.",
        "Nasogastric tube extends into the stomach.",
    ],
    "cvc": [
        "Right internal jugular central venous catheter terminates in the mid SVC.",
        "A right IJ line ends at the cavoatrial junction.",
    ],
}


def report_sentences(
    rng: np.random.Generator, f: PhantomFindings, ctr: float, hedge: bool
) -> tuple[list[_Sentence], list[_Sentence]]:
    """(FINDINGS sentences, IMPRESSION sentences) describing the phantom's findings."""
    found: list[_Sentence] = []
    impression: list[_Sentence] = []
    for device in f.support_devices:
        found.append((pick(rng, _DEVICE_TEXT[device]).format(n=int(rng.integers(3, 6))), {"Support Devices": 1.0}))
    if f.support_devices and rng.random() < 0.6:
        impression.append(("Lines and tubes in standard position.", {"Support Devices": 1.0}))

    # Lungs: opacities first, then what is absent.
    cons_found, cons_imp = _consolidation_sentences(rng, f, hedge)
    found += cons_found
    impression += cons_imp
    nod_found, nod_imp = _nodule_sentences(rng, f)
    found += nod_found
    impression += nod_imp
    if f.effusion:
        s_found, s_imp = _effusion_sentences(rng, f, hedge)
        found.append(s_found)
        impression.append(s_imp)
    if f.pneumothorax:
        s_found, s_imp = _pneumothorax_sentences(rng, f, hedge)
        found.append(s_found)
        impression.append(s_imp)
    absent = [
        name
        for name, present in (
            ("focal consolidation", bool(f.consolidations)),
            ("pleural effusion", bool(f.effusion)),
            ("pneumothorax", bool(f.pneumothorax)),
        )
        if not present
    ]
    label_of = {
        "focal consolidation": "Consolidation",
        "pleural effusion": "Pleural Effusion",
        "pneumothorax": "Pneumothorax",
    }
    if absent:
        if len(absent) > 1 and rng.random() < 0.6:
            listed = ", ".join(absent[:-1]) + " or " + absent[-1]
            text = pick(rng, [f"There is no {listed}.", f"No {listed} is seen."])
            found.append((text, {label_of[a]: 0.0 for a in absent}))
        else:
            for a in absent:
                found.append((pick(rng, [f"No {a}.", f"There is no {a}."]), {label_of[a]: 0.0}))
    if not (f.consolidations or f.nodules or f.effusion or f.pneumothorax) and rng.random() < 0.4:
        found.insert(len(f.support_devices), ("The lungs are clear.", {}))
    if rng.random() < 0.35:
        found.append((pick(rng, ["No pulmonary edema.", "There is no pulmonary vascular congestion or edema."]),
                      {"Edema": 0.0}))  # fmt: skip

    # Heart.
    if f.cardiomegaly:
        degree = "moderate" if ctr >= 0.6 else "mild"
        text = pick(rng, [
            f"{degree.capitalize()} cardiomegaly.",
            f"The heart is {degree}ly enlarged.",
            f"Heart size is {degree}ly enlarged.",
        ])  # fmt: skip
        found.append((text, {"Cardiomegaly": 1.0}))
        impression.append((f"{degree.capitalize()} cardiomegaly.", {"Cardiomegaly": 1.0}))
    elif rng.random() < 0.85:
        found.append(pick(rng, [
            ("Heart size is normal.", {"Cardiomegaly": 0.0}),
            ("The cardiac silhouette is normal in size.", {"Cardiomegaly": 0.0}),
            ("The cardiomediastinal silhouette is within normal limits.",
             {"Cardiomegaly": 0.0, "Enlarged Cardiomediastinum": 0.0}),
            ("Normal heart size. Mediastinal contours are unremarkable.",
             {"Cardiomegaly": 0.0, "Enlarged Cardiomediastinum": 0.0}),
        ]))  # fmt: skip
    if rng.random() < 0.3:
        found.append(pick(rng, [
            ("No acute osseous abnormality.", {}),
            ("No displaced fracture is seen.", {"Fracture": 0.0}),
        ]))  # fmt: skip

    if not impression or all(labels == {"Support Devices": 1.0} for _, labels in impression):
        impression.append(pick(rng, [
            ("No acute cardiopulmonary process.", {}),
            ("No acute intrathoracic process.", {}),
            ("No radiographic evidence of pneumonia.", {"Pneumonia": 0.0}),
        ]))  # fmt: skip
    return found, impression


def merge_labels(sentences: list[_Sentence]) -> dict[str, float | None]:
    """Labels of a report: positive beats uncertain beats negative (as the CheXpert labeller);
    ``No Finding`` is 1.0 when no pathology is positive or uncertain (devices don't count)."""
    rank = {1.0: 3, -1.0: 2, 0.0: 1}
    labels: dict[str, float | None] = dict.fromkeys(MIMIC_LABELS)
    for _, mentioned in sentences:
        for name, value in mentioned.items():
            if labels[name] is None or rank[value] > rank[labels[name]]:
                labels[name] = value
    pathology = [k for k in MIMIC_LABELS if k not in ("No Finding", "Support Devices")]
    if not any(labels[k] in (1.0, -1.0) for k in pathology):
        labels["No Finding"] = 1.0
    return labels


def _wrap(text: str) -> list[str]:
    return [" " + line for line in textwrap.wrap(text, width=72)] or [" "]


_INDICATIONS = [
    "___ year old {sex} with cough and fever, evaluate for pneumonia.",
    "___-year-old {sex} with shortness of breath.  // eval for effusion",
    "History: ___{s} with chest pain",
    "___ year old {sex} status post line placement, assess position.",
    "___ with dyspnea and hypoxia.  // ? pneumothorax",
    "Preoperative evaluation.",
]


def format_report(
    rng: np.random.Generator,
    exam: str,
    sex: str,
    findings: list[str] | None,
    impression: list[str] | None,
    extra_sections: bool = False,
) -> str:
    """Lay out a MIMIC-CXR style free-text report; ``None`` omits a section."""
    sex_word = "man" if sex == "M" else "woman"
    lines = [" " * 33 + "FINAL REPORT", f" EXAMINATION:  {exam}", " "]
    indication = pick(rng, _INDICATIONS).format(sex=sex_word, s=sex)
    lines += [f" INDICATION:  {indication}", " "]
    if rng.random() < 0.6:
        technique = {"CHEST (PA AND LAT)": "Chest PA and lateral", "CHEST (PA)": "Chest PA"}.get(
            exam, "Portable AP chest radiograph"
        )
        lines += [f" TECHNIQUE:  {technique}", " "]
    lines += [f" COMPARISON:  {pick(rng, ['None.', 'Chest radiograph from ___.', '___'])}", " "]
    if findings is not None:
        lines += [" FINDINGS: ", " "]
        body = " ".join(findings)
        lines += _wrap(body) + [" "]
    if impression is not None:
        lines += [" IMPRESSION: ", " "]
        if len(impression) > 1:
            for i, sentence in enumerate(impression, 1):
                lines += _wrap(f"{i}. {sentence}")
        else:
            lines += _wrap(impression[0])
        lines += [" "]
    if extra_sections:
        lines += [
            " NOTIFICATION:  The findings were discussed with Dr. ___ by telephone at ___",
            " on the day of the study.",
            " ",
        ]
    return "\n".join(lines).rstrip() + "\n"


# The image–report collections (IU X-ray, CheXpert Plus): findings drawn with these probabilities, MeSH terms.
_COLLECTION_P = {
    "cardiomegaly": 0.2,
    "effusion": 0.2,
    "consolidation": 0.15,
    "pneumothorax": 0.05,
    "devices": 0.1,
    "ap": 0.2,
}
_DEID_SENTENCES = ["There are no XXXX of a pleural effusion.", "XXXX are intact.", "Stable XXXX appearance."]
_MESH = {
    "Cardiomegaly": "Cardiomegaly/mild",
    "Pleural Effusion": "Pleural Effusion/small",
    "Consolidation": "Consolidation/lung",
    "Lung Opacity": "Opacity/lung",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Support Devices": "Catheters, Indwelling",
}


def collection_report(rng: np.random.Generator, image_size: int) -> tuple[np.ndarray, str, str, list[str]]:
    """A frontal phantom, its findings and impression text, and MeSH major terms."""
    case = sample_case(rng, _COLLECTION_P)
    phantom = render_frontal(int(rng.integers(0, 2**31)), image_size, image_size, case)
    found, imp = report_sentences(rng, phantom.findings, phantom.ctr, False)
    findings = [text for text, _ in found]
    if rng.random() < 0.4:  # the de-identification token, where the anonymiser took a word for a name or date
        findings.insert(int(rng.integers(0, len(findings) + 1)), pick(rng, _DEID_SENTENCES))
    positive = sorted({name for _, labels in found + imp for name, v in labels.items() if v == 1.0})
    mesh = [_MESH[name] for name in positive if name in _MESH] or ["normal"]
    return phantom.image, " ".join(findings), " ".join(text for text, _ in imp), mesh
