"""Bounding boxes alongside resized radiographs, and box files for inference.

Boxes are ``[x1, y1, x2, y2]`` in pixels with x along the image columns and y along the rows, edges continuous
(a box covering columns ``x .. x+w-1`` has ``x2 = x + w``), the convention of the datasets' files. MONAI's
``resize_boxes`` scales box coordinates axis by axis; it is given the sizes in box order ``(W, H)``, which is all
the 2D-image convention asks of it (see :mod:`mflag_monai.networks.detection` for the detector's own axis order).

:class:`ResizeBoxesd` maps boxes from the original image onto the resized network input; :class:`RestoreBoxesd`
is its exact inverse, for predictions. Both read the original size from ``meta["spatial_shape"]`` (written by
:class:`~mflag_monai.transforms.LoadCXRImaged`, untouched by ``Resized``) and the current size from the image.
MONAI's ``AffineBoxToImageCoordinated`` would go through the affine, whose pixel-centre convention is half a pixel
off this edge convention after a resize; the explicit ratio is exact.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.apps.detection.transforms.box_ops import resize_boxes
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..utils.dicom import dicom_identifiers
from ..utils.io import atomic_write_json

if TYPE_CHECKING:
    from ..dicom.results import DicomResults

__all__ = ["original_size", "ResizeBoxesd", "RestoreBoxesd", "SaveBoxesd", "BOX_CONVENTION"]

#: How box files state their coordinates.
BOX_CONVENTION = (
    "[x1, y1, x2, y2] in pixels of the original image; x along the columns, y along the rows; x2 = x1 + width"
)


def original_size(image: torch.Tensor) -> tuple[int, int]:
    """``(rows, columns)`` of the file an image was loaded from (its ``meta["spatial_shape"]``)."""
    meta = getattr(image, "meta", None)
    if meta is None or "spatial_shape" not in meta:
        raise KeyError("the image has no meta['spatial_shape']: load it with mflag_monai.transforms.LoadCXRImaged")
    shape = np.asarray(meta["spatial_shape"]).reshape(-1).tolist()[-2:]
    return int(shape[0]), int(shape[1])


def _as_boxes(boxes: object) -> torch.Tensor:
    """``[N, 4]`` float32 tensor (an empty list or ``[0]``-shaped tensor gives ``[0, 4]``)."""
    array = np.asarray(boxes, dtype=np.float32) if isinstance(boxes, list) else boxes
    return torch.as_tensor(array).float().reshape(-1, 4)


class _BoxScaled(MapTransform):
    """Scale boxes between the original image size and the current size of ``ref_key``'s image."""

    to_original: bool = False

    def __init__(self, keys: KeysCollection, ref_key: str = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        """Rescale every key's boxes."""
        d = dict(data)
        image = d[self.ref_key]
        rows, cols = original_size(image)  # type: ignore[arg-type]
        now_rows, now_cols = (int(s) for s in image.shape[-2:])  # type: ignore[union-attr]
        src, dst = ((now_cols, now_rows), (cols, rows)) if self.to_original else ((cols, rows), (now_cols, now_rows))
        for key in self.key_iterator(d):
            d[key] = resize_boxes(_as_boxes(d[key]), src_spatial_size=src, dst_spatial_size=dst)  # sizes as (x, y)
        return d


class ResizeBoxesd(_BoxScaled):
    """Boxes in original-image pixels → pixels of ``ref_key``'s resized image (``[N, 4]`` float32; ``[]`` → ``[0, 4]``)."""

    to_original = False


class RestoreBoxesd(_BoxScaled):
    """Boxes on ``ref_key``'s resized image → pixels of the original image: the inverse of :class:`ResizeBoxesd`."""

    to_original = True


class SaveBoxesd(MapTransform):
    """Write an image's predicted boxes as ``<stem>_boxes.json`` (with the DICOM study/series/SOP instance UIDs of a
    DICOM input) and, optionally, ``<stem>_boxes.png`` (the boxes drawn
    on the original image).

    Expects the boxes already in original-image pixels (after :class:`RestoreBoxesd`).

    Args:
        keys: the predicted boxes key (``[N, 4]``).
        output_dir: folder for the files.
        score_key: the confidences ``[N]``.
        label_key: the class indices ``[N]``.
        label_names: class index → name, written beside each box.
        ref_key: the image key; its ``meta["filename_or_obj"]`` names the files.
        overlay: also draw the PNG (reads the original file again, so the drawing is at full resolution).
        dicom: the run's :class:`~mflag_monai.dicom.DicomResults`: for a DICOM input, also ``<stem>_sr.dcm``, a DICOM
            SR of the same boxes and scores as the JSON; ``None`` writes none.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        score_key: str = "pred_scores",
        label_key: str = "pred_labels",
        label_names: Sequence[str] = ("finding",),
        ref_key: str = "image",
        overlay: bool = True,
        dicom: DicomResults | None = None,
    ) -> None:
        super().__init__(keys)
        self.output_dir = Path(output_dir)
        self.score_key, self.label_key, self.ref_key = score_key, label_key, ref_key
        self.label_names = list(label_names)
        self.overlay = overlay
        self.dicom = dicom

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        """Write the files; their paths go under ``<key>_files``."""
        d = dict(data)
        source = str(d[self.ref_key].meta["filename_or_obj"])  # type: ignore[union-attr]
        rows, cols = original_size(d[self.ref_key])  # type: ignore[arg-type]
        stem = Path(source).stem  # only the suffix goes: SIIM-style ids contain dots
        for key in self.key_iterator(d):
            boxes = _as_boxes(d[key]).cpu()
            scores = torch.as_tensor(d[self.score_key]).float().cpu().reshape(-1)
            labels = torch.as_tensor(d[self.label_key]).long().cpu().reshape(-1)
            objects = [
                {
                    "box": [round(float(v), 2) for v in box],
                    "score": round(float(score), 4),
                    "label": int(label),
                    "label_name": self.label_names[label] if label < len(self.label_names) else str(label),
                }
                for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist())
            ]
            ids = dicom_identifiers(d[self.ref_key])
            record = {"image": source, **ids, "rows": rows, "columns": cols}
            record.update({"convention": BOX_CONVENTION, "boxes": objects})
            written = [str(atomic_write_json(record, self.output_dir / f"{stem}_boxes.json"))]
            if self.dicom is not None:
                boxes_sr = [{"label": o["label_name"], "score": o["score"], "box": o["box"]} for o in objects]
                sr = self.dicom.detection(source, ids["SOPInstanceUID"], boxes_sr, self.output_dir / f"{stem}_sr.dcm")
                if sr is not None:
                    written.append(str(sr))
            if self.overlay:
                from ..utils.overlay import save_box_overlay
                from .io import read_cxr

                image, _ = read_cxr(source)
                title = f"{Path(source).name}: {len(objects)} predicted box(es)"
                path = self.output_dir / f"{stem}_boxes.png"
                written.append(str(save_box_overlay(image, None, boxes, scores, path, title)))
            d[f"{key}_files"] = written
        return d
