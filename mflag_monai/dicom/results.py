"""One inference run's DICOM results: a SEG or SR per DICOM input, in one new series per run, and where they go.

The bundles' writers (:class:`~mflag_monai.transforms.SaveMaskd`, :class:`~mflag_monai.transforms.SaveBoxesd`,
:class:`~mflag_monai.handlers.PredictionCSVWriter`) hand each DICOM input's result to :class:`DicomResults`, which
writes ``<stem>_seg.dcm`` / ``<stem>_sr.dcm`` beside the other files of that input, from the same values those files
hold (the CSV's rounded probabilities, the JSON's boxes). PNG/JPG inputs have no study to refer to: they get none.
A DICOM input that cannot carry a result (no SOP Instance UID, a multi-frame image) is named in a warning and counted,
never silently left out. :meth:`DicomResults.store` sends what the run wrote to a DICOMweb server (STOW-RS).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DicomResults", "fetch_inputs"]

logger = logging.getLogger(__name__)


class DicomResults:
    """Writes one run's DICOM SEG/SR results, all in one new series, and stores them on request.

    Args:
        algorithm_name: who made the result (the bundle), in the SEG's algorithm identification and the SR's
            device observer (at most 64 characters).
        algorithm_version: the bundle's version.
        enabled: ``False`` writes nothing (``--write_dicom false``).
    """

    def __init__(self, algorithm_name: str, algorithm_version: str, enabled: bool = True) -> None:
        from pydicom.uid import generate_uid

        self.algorithm_name = str(algorithm_name)
        self.algorithm_version = str(algorithm_version)
        self.enabled = bool(enabled)
        self.series_instance_uid = generate_uid()  # one series per run: a PACS shows a run's results together
        self.written: list[Path] = []
        self.refused: list[str] = []

    def _write(
        self, kind: str, source: str, sop_instance_uid: str, output: Path, write: Any, payload: Any
    ) -> Path | None:
        # the callers know the input's identifiers already: an empty SOP Instance UID is a PNG/JPG input
        if not self.enabled or not sop_instance_uid:
            return None
        try:
            path = write(
                source,
                payload,
                output,
                series_instance_uid=self.series_instance_uid,
                algorithm_name=self.algorithm_name,
                algorithm_version=self.algorithm_version,
            )
        except ValueError as err:  # the writers name the source file and the problem
            self.refused.append(source)
            logger.warning("no DICOM %s for %s: %s", kind, source, err)
            return None
        self.written.append(Path(path))
        return Path(path)

    def segmentation(
        self, source: str, sop_instance_uid: str, masks: Mapping[str, np.ndarray], output: str | os.PathLike
    ) -> Path | None:
        """A DICOM SEG of ``masks`` (``{finding: [Rows, Columns] bool}``) on ``source`` (its SOP Instance UID, empty
        for a non-DICOM input); ``None`` for a non-DICOM source or when disabled."""
        from .seg import write_seg

        return self._write("SEG", source, sop_instance_uid, Path(output), write_seg, masks)

    def classification(
        self, source: str, sop_instance_uid: str, findings: Sequence[Mapping], output: str | os.PathLike
    ) -> Path | None:
        """A DICOM SR of ``[{label, probability, threshold}]`` on ``source``; ``None`` for a non-DICOM source."""
        from .sr import write_classification_sr

        return self._write("SR", source, sop_instance_uid, Path(output), write_classification_sr, findings)

    def detection(
        self, source: str, sop_instance_uid: str, boxes: Sequence[Mapping], output: str | os.PathLike
    ) -> Path | None:
        """A DICOM SR of ``[{label, score, box}]`` (original pixels) on ``source``; ``None`` for a non-DICOM source."""
        from .sr import write_detection_sr

        return self._write("SR", source, sop_instance_uid, Path(output), write_detection_sr, boxes)

    def summary(self) -> str:
        """One line: how many results were written, in which series, and how many inputs could not carry one."""
        text = f"{len(self.written)} DICOM result(s) in series {self.series_instance_uid}"
        return text + (f"; {len(self.refused)} DICOM input(s) without one (see the warnings)" if self.refused else "")

    def store(self, url: str | None) -> int:
        """Send every result of this run to the DICOMweb server at ``url`` (STOW-RS); nothing when ``url`` is empty.

        Returns:
            the number of files stored.
        """
        if self.written or self.refused:
            logger.info("%s", self.summary())
        if not url or str(url).lower() in ("none", "null"):
            return 0
        from .web import store_instances

        store_instances(str(url), self.written)
        logger.info("Stored %d DICOM result(s) at %s", len(self.written), url)
        return len(self.written)


def fetch_inputs(
    input_path: str | os.PathLike,
    url: str | None,
    study_uid: str | None,
    series_uid: str | None,
    output_dir: str | os.PathLike,
) -> str:
    """The images an inference run reads: ``input_path``, or, with ``url``, the study (or series) fetched from that
    DICOMweb server (WADO-RS) into ``output_dir/dicomweb_inputs``.

    Raises:
        InputError: ``url`` without ``study_uid``, or what the server answers (unreachable, unknown study, ...).
    """
    if not url or str(url).lower() in ("none", "null"):
        return str(input_path)
    from ..utils.errors import InputError
    from .web import fetch_instances

    if not study_uid or str(study_uid).lower() in ("none", "null"):
        raise InputError("--input_dicomweb needs the study to read: pass --study_uid (and --series_uid)", url)
    series = None if not series_uid or str(series_uid).lower() in ("none", "null") else str(series_uid)
    target = Path(output_dir) / "dicomweb_inputs"
    files = fetch_instances(str(url), str(study_uid), series, target)
    logger.info("Fetched %d instance(s) of study %s from %s into %s", len(files), study_uid, url, target)
    return str(target)
