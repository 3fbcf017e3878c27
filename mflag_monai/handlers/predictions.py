"""Per-input outputs of the inference runs: per-label probabilities as CSV (classification) and image embeddings
(pre-training).

:class:`EmbeddingWriter` writes, in the run's output folder,

* ``embeddings/<stem>.npz`` per input: ``feature`` (encoder), ``projection`` (shared image–report space) and the
  identifiers (``image``, ``StudyInstanceUID``, ``SeriesInstanceUID``, ``SOPInstanceUID``; empty for PNG/JPG);
* ``embeddings.npz``: the ``feature`` ``[N, F]`` and ``projection`` ``[N, P]`` arrays of all inputs, row ``i`` = row
  ``i`` of the index;
* ``embeddings.csv``: the index (row, image, the three UIDs, the per-input file).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from ignite.engine import Engine

from ..utils.dicom import DICOM_UIDS, dicom_identifiers, source_of
from ..utils.io import atomic_write_bytes
from .base import ReportWriter, output_rows

if TYPE_CHECKING:
    from ..dicom.results import DicomResults

logger = logging.getLogger(__name__)

__all__ = ["INDEX_COLUMNS", "EmbeddingWriter", "PredictionCSVWriter"]

INDEX_COLUMNS = ("row", "image", *DICOM_UIDS, "file")


class PredictionCSVWriter(ReportWriter):
    """Write ``image,StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,<label 1>,<label 2>,...`` rows of per-label
    probabilities for every image of an inference run (the identifiers are empty for PNG/JPG inputs).

    Args:
        filepath: the CSV file.
        names: the labels, in output order.
        image_key: the image key of the engine's output.
        dicom: the run's :class:`~mflag_monai.dicom.DicomResults`: for each DICOM input, also ``<stem>_sr.dcm`` beside
            the CSV, a DICOM SR of the same (rounded) probabilities with ``threshold``; ``None`` writes none.
        threshold: the probability above which a finding is reported present in the SR.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        names: list[str],
        image_key: str = "image",
        dicom: DicomResults | None = None,
        threshold: float = 0.5,
    ) -> None:
        self.filepath = Path(filepath)
        self.names = list(names)
        self.image_key = image_key
        self.dicom = dicom
        self.threshold = float(threshold)
        self.rows: list[list[object]] = []

    def collect(self, engine: Engine) -> None:
        """Keep (file name, probabilities) for each image of the batch."""
        for row in output_rows(engine):
            image = row[self.image_key]
            uids = dicom_identifiers(image)
            probs = torch.as_tensor(row["pred"]).detach().float().cpu().reshape(-1).tolist()
            self.rows.append([source_of(image), *(uids[k] for k in DICOM_UIDS), *[f"{p:.6f}" for p in probs]])

    def write(self, engine: Engine) -> None:
        """Write the CSV atomically, then the SRs."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["image", *DICOM_UIDS, *self.names])
        writer.writerows(self.rows)
        atomic_write_bytes(self.filepath, buffer.getvalue().encode())
        logger.info("Predictions for %d images written to %s", len(self.rows), self.filepath)
        if self.dicom is None:
            return
        taken: set[str] = set()
        for row in self.rows:
            source, probs = str(row[0]), row[1 + len(DICOM_UIDS) :]
            findings = [
                {"label": name, "probability": float(p), "threshold": self.threshold}  # the CSV's rounded values
                for name, p in zip(self.names, probs)
            ]
            stem = _unique_name(Path(source).stem, taken)
            sop_instance = str(row[DICOM_UIDS.index("SOPInstanceUID") + 1])  # empty for PNG/JPG
            self.dicom.classification(source, sop_instance, findings, self.filepath.parent / f"{stem}_sr.dcm")


def _unique_name(stem: str, taken: set[str]) -> str:
    name, n = stem, 2
    while name in taken:  # same file name in two sub-folders
        name, n = f"{stem}_{n}", n + 1
    taken.add(name)
    return name


class EmbeddingWriter(ReportWriter):
    """Write the embeddings of every input of an inference run (see the module docstring for the files).

    Per-input files are written after each iteration, the arrays and the index when the run completes.

    Args:
        output_dir: the run's folder (created on the first write).
        split: ``output -> (feature, projection)``, e.g. the network's ``split``.
        image_key: the key of the input image in the engine's output (its ``meta`` names the file).
    """

    def __init__(self, output_dir: str | os.PathLike, split: Callable, image_key: str = "image") -> None:
        self.output_dir = Path(output_dir)
        self.split = split
        self.image_key = image_key
        self.index: list[dict[str, str]] = []
        self.features: list[np.ndarray] = []
        self.projections: list[np.ndarray] = []
        self._names: set[str] = set()

    def collect(self, engine: Engine) -> None:
        """Write this batch's per-input files and keep their rows."""
        rows = output_rows(engine)
        folder = self.output_dir / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            pred = torch.as_tensor(row["pred"]).detach().float().cpu().reshape(1, -1)
            feature, projection = (t[0].numpy() for t in self.split(pred))
            image = row[self.image_key]
            source = source_of(image)
            record = {"row": str(len(self.index)), "image": source, **dicom_identifiers(image)}
            name = _unique_name(Path(source).stem or f"input_{len(self.index)}", self._names)
            path = folder / f"{name}.npz"
            buffer = io.BytesIO()
            ids = {k: np.array(v) for k, v in record.items() if k != "row"}
            np.savez(buffer, feature=feature, projection=projection, **ids)
            atomic_write_bytes(path, buffer.getvalue())
            record["file"] = str(path.relative_to(self.output_dir))
            self.index.append(record)
            self.features.append(feature)
            self.projections.append(projection)

    def write(self, engine: Engine) -> None:
        """Write ``embeddings.npz`` and ``embeddings.csv``."""
        if not self.index:
            logger.warning("No inputs: nothing written to %s", self.output_dir)
            return
        buffer = io.BytesIO()
        np.savez(buffer, feature=np.stack(self.features), projection=np.stack(self.projections))
        atomic_write_bytes(self.output_dir / "embeddings.npz", buffer.getvalue())
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(self.index)
        atomic_write_bytes(self.output_dir / "embeddings.csv", text.getvalue().encode())
        logger.info("Embeddings of %d images written to %s", len(self.index), self.output_dir)
