"""Post-processing for inference: back to the input's size, and mask files in the input's geometry."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..utils.dicom import dicom_identifiers
from ..utils.io import atomic_write_json

if TYPE_CHECKING:
    from ..dicom.results import DicomResults

__all__ = ["RestoreSized", "SaveMaskd"]


class RestoreSized(MapTransform):
    """Resize ``keys`` (``[C, h, w]``) back to the original ``[H, W]`` of ``ref_key``'s image (``meta['spatial_shape']``).

    MONAI's ``Invertd`` would also try to invert the channel repeat and intensity steps of our chain; only the size
    needs restoring.
    """

    def __init__(self, keys: KeysCollection, ref_key: str = "image", mode: str = "nearest") -> None:
        super().__init__(keys)
        self.ref_key = ref_key
        self.mode = mode

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """Resize every key to the reference's original size."""
        d = dict(data)
        shape = tuple(int(s) for s in np.asarray(d[self.ref_key].meta["spatial_shape"]).tolist()[-2:])
        for key in self.key_iterator(d):
            x = torch.as_tensor(d[key]).float()[None]
            d[key] = F.interpolate(x, size=shape, mode=self.mode)[0]
        return d


class SaveMaskd(MapTransform):
    """Write a binary mask ``[1, H, W]`` as ``<stem>_mask.png`` (0/255, same H × W as the input) and ``.nii.gz``, and
    ``<stem>_mask.json`` naming the input (absolute path), its DICOM study/series/SOP instance UIDs (empty for PNG/JPG)
    and the files written beside it (names, relative to the JSON's folder);
    for a DICOM input, also ``<stem>_seg.dcm``, a DICOM SEG of the mask on that image (with ``dicom``).

    The NIfTI stores the mask with the first axis along the image columns (x) and the second along the rows (y), and
    the input's pixel spacing in its affine, which is how ITK-based viewers place a 2D image.

    Args:
        keys: the mask key.
        output_dir: folder for the files.
        ref_key: key whose ``meta['filename_or_obj']`` and ``meta['pixel_spacing']`` name and place the output.
        formats: any of ``"png"``, ``"nii.gz"``.
        label_names: what the mask marks (the SEG's segment), e.g. ``["pneumothorax"]``.
        dicom: the run's :class:`~mflag_monai.dicom.DicomResults`; ``None`` writes no DICOM SEG.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        ref_key: str = "image",
        formats: tuple[str, ...] = ("png", "nii.gz"),
        label_names: Sequence[str] = ("finding",),
        dicom: DicomResults | None = None,
    ) -> None:
        super().__init__(keys)
        self.output_dir = Path(output_dir)
        self.ref_key = ref_key
        self.formats = formats
        self.label_names = list(label_names)
        self.dicom = dicom

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, object]:
        """Write the files; their paths go under ``<key>_files``."""
        import nibabel as nib
        from PIL import Image

        d = dict(data)
        meta = d[self.ref_key].meta
        name = Path(str(meta["filename_or_obj"])).name
        stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem  # SIIM ids contain dots
        spacing = [float(s) for s in meta.get("pixel_spacing", [1.0, 1.0])]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        ids = dicom_identifiers(d[self.ref_key])  # one header read for the JSON and the SEG
        for key in self.key_iterator(d):
            mask = (torch.as_tensor(d[key])[0].cpu().numpy() > 0.5).astype(np.uint8)
            written = []
            if "png" in self.formats:
                path = self.output_dir / f"{stem}_mask.png"
                Image.fromarray(mask * 255).save(path)
                written.append(str(path))
            if "nii.gz" in self.formats:
                path = self.output_dir / f"{stem}_mask.nii.gz"
                affine = np.diag([spacing[1], spacing[0], 1.0, 1.0])  # x = columns, y = rows
                nib.save(nib.Nifti1Image(mask.T.copy(), affine), str(path))
                written.append(str(path))
            if self.dicom is not None:
                seg = self.dicom.segmentation(
                    str(meta["filename_or_obj"]),
                    ids["SOPInstanceUID"],
                    {self.label_names[0]: mask.astype(bool)},
                    self.output_dir / f"{stem}_seg.dcm",
                )
                if seg is not None:
                    written.append(str(seg))
            # the masks' link to the study they belong to (file names alone do not carry it)
            record = {
                "image": str(Path(str(meta["filename_or_obj"])).resolve()),
                **ids,
                "files": [Path(f).name for f in written],  # beside this JSON: valid wherever the folder is moved
            }
            written.append(str(atomic_write_json(record, self.output_dir / f"{stem}_mask.json")))
            d[f"{key}_files"] = written
        return d
