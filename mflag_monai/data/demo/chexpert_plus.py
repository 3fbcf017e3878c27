"""The demo CheXpert Plus collection: ``df_chexpert_plus_240401.csv`` with PNG (and optionally DICOM) images, for
trying ``prepare chexpert-plus`` without downloading it. The same arguments give the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import STREAMS, pick, render_lateral, save_png, stream_rng, write_csv
from .dicom_writer import save_cr
from .reports import collection_report

__all__ = ["CHEXPERT_PLUS_CSV", "write_chexpert_plus_demo"]


CHEXPERT_PLUS_CSV = "df_chexpert_plus_240401.csv"


def write_chexpert_plus_demo(
    out_dir: str | os.PathLike,
    num_patients: int = 16,
    seed: int = 42,
    image_size: int = 96,
    images: tuple[str, ...] = ("png",),
) -> Path:
    """Write a small CheXpert Plus collection under ``out_dir`` and return that folder.

    ``df_chexpert_plus_240401.csv`` lists one row per image (``path_to_image`` ending in ``.jpg`` as in the
    release; the files are ``PNG/<path>.png`` and, with ``"dcm"`` in ``images``, ``DICOM/<path_to_dcm>``). About one
    patient in eight is in the ``valid`` split. Some studies have a lateral image, some empty section columns with the
    sections only in ``report``, one no text at all.
    """
    if num_patients < 4:
        raise ValueError("num_patients must be at least 4")
    root = Path(out_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    rng = stream_rng(seed, STREAMS["chexpert-plus"])
    header = [
        "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order",
        "report", "section_findings", "section_impression", "age", "sex", "split",
    ]  # fmt: skip
    rows = []
    n_valid = max(1, num_patients // 8)
    for p in range(1, num_patients + 1):
        split = "valid" if p > num_patients - n_valid else "train"
        patient, sex, age = f"patient{p:05d}", pick(rng, ["Male", "Female"]), int(rng.integers(18, 91))
        for order in range(1, int(rng.integers(1, 3)) + 1):
            frontal, findings, impression, _ = collection_report(rng, image_size)
            if p == 1 and order == 1:
                findings = impression = ""  # nothing: dropped
            report = f"NARRATIVE:\nCHEST 2 VIEWS\n\nFINDINGS: {findings}\n\nIMPRESSION:\n{impression}\n"
            if p == 2:  # the section columns left empty; the text is only in the report
                section_findings = section_impression = ""
            else:
                section_findings, section_impression = findings, impression
            projection = "AP" if rng.random() < 0.3 else "PA"
            views = [("Frontal", projection)] + ([("Lateral", "")] if rng.random() < 0.3 else [])
            for k, (view, ap_pa) in enumerate(views, 1):
                rel = f"{split}/{patient}/study{order}/view{k}_{view.lower()}"
                pixels = (
                    frontal
                    if view == "Frontal"
                    else render_lateral(int(rng.integers(0, 2**31)), image_size, image_size)
                )
                if "png" in images:
                    save_png(root / "PNG" / f"{rel}.png", pixels)
                if "dcm" in images:
                    save_cr(root / "DICOM" / f"{rel}.dcm", pixels, ap_pa if view == "Frontal" else "LL", rng)
                rows.append([
                    f"{rel}.jpg", f"{rel}.dcm", view, ap_pa, patient, order, report if (findings or impression) else "",
                    section_findings, section_impression, age, sex, split,
                ])  # fmt: skip
    write_csv(root / CHEXPERT_PLUS_CSV, header, rows)
    return root
