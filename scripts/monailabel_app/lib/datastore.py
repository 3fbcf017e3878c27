"""A DICOMweb datastore for radiographs: MONAI Label's :class:`DICOMWebDatastore` with what 2D projections need.

MONAI Label 0.8.5's DICOMweb datastore, as it is:

- lists series with one QIDO-RS search filter, ``{"Modality": "CT"}`` unless ``MONAI_LABEL_DICOMWEB_SEARCH_FILTER``
  says otherwise, so no radiograph (CR, DX) is listed;
- on fetch, retrieves the series (WADO-RS) into ``<cache>/<id>/<SOPInstanceUID>.dcm`` and converts it with
  SimpleITK/GDCM to ``<cache>/<id>.nii.gz``, the path it hands the infer task (and the file a viewer downloads).
  That NIfTI holds the stored values after the modality rescale with MONOCHROME1 inverted but no VOI window, a
  3D image of one slice whose x runs along the columns (as the DICOM pixel data), and the spacing GDCM finds (1 for
  the demo CR and DX files, whose PixelSpacing it does not read);
- on save of a final label, converts the label to DICOM SEG with dcmqi's ``itkimage2segimage`` (downloaded from
  GitHub when the server starts) and stores it by STOW-RS; reading SEGs back (for training) goes through
  pydicom-seg. Both need a slice geometry (ImagePositionPatient, SliceThickness) that a radiograph does not have.

Here: the modalities are chosen by ``--conf modalities`` (default CR, DX, DR), one search per modality, and
non-image series (SEG, SR, ...) are never listed (``GET /datastore/?output=all`` shows them all, fetched or not);
the first fetch returns the cached NIfTI, not a temporary file (the infer tasks find the DICOM file beside it:
:func:`dicom_source`); a saved label becomes a BINARY SEG written with highdicom (``mflag_monai.dicom.write_seg``:
aligned with the source pixel for pixel, no plane positions), one segment per label value; SEGs are read back with
``mflag_monai.dicom.read_seg``, and the training list pairs each DICOM file with a PNG of its mask, which the
bundle's loader reads. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import TTLCache, cached
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.convert import binary_to_image
from monailabel.datastore.utils.dicom import dicom_web_download_series
from monailabel.interfaces.datastore import DefaultLabelTag
from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

#: The radiograph modalities listed by default (DR is not a DICOM code, but some digital radiography devices write it).
DEFAULT_MODALITIES = ("CR", "DX", "DR")
#: Series that are never images to annotate, whatever the filter: results, reports, presentation states.
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "DOC", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "AU"})
#: Series Number and Description of the SEG series a saved label makes (one new series per save).
SEG_SERIES_NUMBER = 902
SEG_SERIES_DESCRIPTION = "MONAI Label"
_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def parse_modalities(value: str | None) -> list[str] | None:
    """The ``--conf modalities`` value as upper-case codes; ``None`` (no modality filter) for ``all`` or ``*``.

    An unset or empty value gives :data:`DEFAULT_MODALITIES`.
    """
    text = (value or "").strip()
    if not text:
        return list(DEFAULT_MODALITIES)
    if text.lower() in ("all", "*", "none"):
        return None
    return list(dict.fromkeys(m.strip().upper() for m in text.split(",") if m.strip()))


def series_folder(uri: str | os.PathLike) -> Path | None:
    """The folder of the series' DICOM files behind an image URI the DICOMweb datastore hands out.

    The datastore keeps ``<cache>/<id>/`` (the retrieved instances) beside ``<cache>/<id>.nii.gz`` (their conversion);
    with conversion off it hands out the folder itself. Any other path gives ``None``.
    """
    path = Path(uri)
    if path.is_dir():
        return path
    name = path.name
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            folder = path.with_name(name[: -len(suffix)])
            return folder if folder.is_dir() else None
    return None


def series_dicom_file(folder: str | os.PathLike) -> Path:
    """The one DICOM file of a retrieved radiograph series.

    Raises:
        ValueError: the folder holds no DICOM file, or several (a series of several radiographs cannot be one image).
    """
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() == ".dcm")
    if len(files) != 1:
        what = "no DICOM file" if not files else f"{len(files)} DICOM files"
        raise ValueError(
            f"series {Path(folder).name}: {what} retrieved; this app reads one radiograph per series (image id)"
        )
    return files[0]


def dicom_source(uri: str | os.PathLike) -> Path | None:
    """The radiograph's DICOM file for an image URI of the DICOMweb datastore, or ``None`` for any other path."""
    folder = series_folder(uri)
    return series_dicom_file(folder) if folder is not None else None


def label_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A saved label file as a ``(rows, columns)`` integer array.

    The label comes in the geometry of the image the viewer loaded (x along the columns, as the datastore's NIfTI),
    as 2D or as a 3D volume of one slice; ITK's array order is then ``[slice,] row, column``.

    Raises:
        ValueError: the label is not one slice of ``shape``.
    """
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    plane = np.squeeze(array)
    if plane.ndim != 2 or plane.shape != tuple(shape):
        raise ValueError(
            f"label {Path(path).name} has shape {array.shape} (ITK order [slice,] row, column); the radiograph is "
            f"{shape[0]} x {shape[1]} (rows x columns)"
        )
    return np.rint(plane).astype(np.int64)


def segment_names(values: Sequence[int], label_info: Any, default_names: Mapping[int, str]) -> dict[int, str]:
    """A segment label for each label value: the viewer's ``label_info`` (``[{"name", "idx"}]``, where ``idx`` is
    the value, or the position when it has none), then the served model's names, then ``label <value>``."""
    names: dict[int, str] = {}
    items = label_info if isinstance(label_info, list) else []
    for position, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("name"):
            value = item.get("idx", item.get("label", position + 1))
            try:
                names.setdefault(int(value), str(item["name"]))
            except (TypeError, ValueError):
                continue
    out = {}
    for value in values:
        name = names.get(value) or default_names.get(value) or f"label {value}"
        out[value] = name.replace("\\", "/")[:64]  # a Segment Label is LO: at most 64 characters, no backslash
    return out


def write_label_seg(
    source: str | os.PathLike,
    mask: np.ndarray,
    names: Mapping[int, str],
    output: str | os.PathLike,
    *,
    algorithm_name: str,
    algorithm_version: str,
) -> Dataset:
    """Write a label map on the radiograph ``source`` as a BINARY DICOM SEG with one segment per entry of ``names``
    (an absent value gives an empty segment: a saved empty label says "no finding"); return the SEG's header.

    The segments are SEMIAUTOMATIC: a label saved from a viewer is a model's proposal checked or edited by a person.
    """
    import pydicom
    from pydicom.uid import generate_uid

    from mflag_monai.dicom import write_seg

    masks = {}
    for value, name in sorted(names.items()):
        if name in masks:  # two values with one name: one segment holds both
            masks[name] = masks[name] | (mask == value)
        else:
            masks[name] = mask == value
    write_seg(
        source,
        masks,
        output,
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        algorithm_name=algorithm_name,
        algorithm_version=algorithm_version,
    )
    seg = pydicom.dcmread(output)
    for segment in seg.SegmentSequence:
        segment.SegmentAlgorithmType = "SEMIAUTOMATIC"
    seg.SeriesDescription = f"{SEG_SERIES_DESCRIPTION}: {', '.join(masks)}"[:64]
    seg.save_as(output)
    return seg


class RadiographDICOMwebDatastore(DICOMWebDatastore):
    """MONAI Label's DICOMweb datastore for 2D radiographs (see the module docstring).

    Args:
        client: the DICOMweb client (as MONAI Label makes it).
        modalities: the Modality values to list, ``None`` for any image series.
        search_filter: other QIDO-RS filters every search adds (e.g. ``{"StudyDate": "20240101-"}``).
        label_names: ``{label value: name}`` of the served segmentation model, for SEG segments the viewer names not.
        algorithm: ``(name, version)`` recorded in the SEG's segments.
        kwargs: passed to :class:`DICOMWebDatastore` (``cache_path``, ``fetch_by_frame``, ``convert_to_nifti``).
    """

    def __init__(
        self,
        client: Any,
        modalities: Sequence[str] | None,
        search_filter: Mapping[str, Any] | None = None,
        label_names: Mapping[int, str] | None = None,
        algorithm: tuple[str, str] = ("mflag-monai segmentation", "0"),
        **kwargs: Any,
    ) -> None:
        self._modalities = list(modalities) if modalities else None
        self._extra_filter = {k: v for k, v in dict(search_filter or {}).items() if k != "Modality"}
        self._label_names = dict(label_names or {})
        self._algorithm = algorithm
        super().__init__(client=client, search_filter=self._extra_filter, **kwargs)
        logger.info(f"DICOMweb datastore: modalities {self._modalities or 'all'}; other filters {self._extra_filter}")

    @cached(cache=TTLCache(maxsize=16, ttl=settings.MONAI_LABEL_DICOMWEB_CACHE_EXPIRY))
    def list_images(self) -> list[str]:
        """Series UIDs of every listed modality (one search each: not every server reads a list of values)."""
        found: dict[str, None] = {}
        for modality in self._modalities or [None]:
            search = dict(self._extra_filter)
            if modality:
                search["Modality"] = modality
            for item in self._client.search_for_series(search_filters=search):
                ds = Dataset.from_json(item)
                if str(ds.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
                    continue
                found[str(ds.SeriesInstanceUID)] = None
        logger.debug(f"Total series: {len(found)}")
        return list(found)

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        """Series with a SEG on the server, each once (MONAI Label lists one entry per SEG)."""
        return list(dict.fromkeys(super().get_labeled_images(label_tag, labels)))

    def get_image_uri(self, image_id: str) -> str:
        """The cached image: the NIfTI beside the series' DICOM files (MONAI Label returns a temporary copy the first
        time, which the infer task could not trace back to the DICOM files)."""
        uri = super().get_image_uri(image_id)
        if not self._convert_to_nifti:
            return uri
        cached_copy = os.path.realpath(os.path.join(self._datastore.image_path(), f"{image_id}.nii.gz"))
        if os.path.realpath(uri) != cached_copy and os.path.isfile(cached_copy):
            if os.path.dirname(os.path.realpath(uri)) == os.path.realpath(tempfile.gettempdir()):
                os.unlink(uri)  # the conversion's temporary file, copied into the cache already
            return cached_copy
        return uri

    def save_label(
        self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any], label_id: str = ""
    ) -> str:
        """Keep the label in the local cache and, for the final tag, store it as a DICOM SEG (STOW-RS)."""
        logger.info(f"Saving label for {image_id} ({label_tag}): {label_filename}; info: {label_info}")
        label_info = dict(label_info or {})
        image_uri = self.get_image_uri(image_id)  # fetches the series when it is not cached yet
        converted = ""
        if "".join(Path(label_filename).suffixes) == ".bin":  # a raw label buffer of the image (OHIF's client)
            converted = binary_to_image(image_uri, label_filename)
            label_filename = converted
        try:
            if label_tag == DefaultLabelTag.FINAL:
                label_info.update(self._store_seg(image_id, label_filename, label_info.get("label_info")))
                # the labelled series are listed from the server's SEGs, kept for the cache's expiry otherwise:
                # the next "unlabelled" sample would be this image again
                forget = getattr(DICOMWebDatastore.get_labeled_images, "cache_clear", None)
                if forget is not None:
                    forget()
            return LocalDatastore.save_label(self, image_id, label_filename, label_tag, label_info)
        finally:
            if converted:
                os.unlink(converted)

    def _store_seg(self, image_id: str, label_filename: str, label_info: Any) -> dict[str, Any]:
        """Write the label as a SEG on the series' radiograph, store it, and return what the local copy records."""
        import pydicom

        source = series_dicom_file(os.path.join(self._datastore.image_path(), image_id))
        header = pydicom.dcmread(source, stop_before_pixels=True)
        mask = label_mask(label_filename, (int(header.Rows), int(header.Columns)))
        values = sorted({int(v) for v in np.unique(mask) if v != 0} | set(self._label_names))
        names = segment_names(values, label_info, self._label_names)
        with tempfile.TemporaryDirectory(prefix="mflag-seg-") as folder:
            seg = write_label_seg(
                source,
                mask,
                names,
                os.path.join(folder, "seg.dcm"),
                algorithm_name=self._algorithm[0],
                algorithm_version=self._algorithm[1],
            )
            answer = self._client.store_instances([pydicom.dcmread(os.path.join(folder, "seg.dcm"))])
        failed = list(getattr(answer, "FailedSOPSequence", None) or [])
        if failed:
            raise RuntimeError(
                f"the DICOMweb server refused the SEG of {image_id} (failure reason "
                f"{failed[0].get('FailureReason', 'not given')}); see its log"
            )
        logger.info(f"Stored SEG {seg.SOPInstanceUID} (series {seg.SeriesInstanceUID}) for image series {image_id}")
        return {
            "SeriesInstanceUID": str(seg.SeriesInstanceUID),
            "SOPInstanceUID": str(seg.SOPInstanceUID),
            "Modality": str(header.get("Modality", "")),
            "PatientID": str(header.get("PatientID", "")),
            "StudyInstanceUID": str(header.StudyInstanceUID),
        }

    def get_label_uri(self, label_id: str, label_tag: str, image_id: str = "") -> str:
        """A final label from the server: the SEG series ``label_id`` as a label map in the image's geometry."""
        if label_tag != DefaultLabelTag.FINAL:
            return LocalDatastore.get_label_uri(self, label_id, label_tag)
        target = os.path.realpath(os.path.join(self._datastore.label_path(DefaultLabelTag.FINAL), f"{image_id}.nii.gz"))
        if os.path.exists(target):
            return target
        folder = os.path.realpath(os.path.join(self._datastore.label_path(label_tag), label_id))
        if not os.path.isdir(folder) or not os.listdir(folder):
            dicom_web_download_series(None, label_id, folder, self._client, self._fetch_by_frame)
        with tempfile.TemporaryDirectory(prefix="mflag-label-") as scratch:
            try:
                label = self._seg_to_label(series_dicom_file(folder), image_id, os.path.join(scratch, "label.nii.gz"))
            except ValueError as err:  # another tool's SEG (not BINARY, several instances): left out, not fatal
                logger.warning(f"Label {label_id} of {image_id} left out: {err}")
                return ""
            LocalDatastore.save_label(self, image_id, label, label_tag, self._dicom_info(label_id))
        return target

    def _seg_to_label(self, seg_file: Path, image_id: str, output: str) -> str:
        """A BINARY SEG as a label map (segment n -> value n, later segments over earlier) written like the image."""
        import pydicom
        import SimpleITK as sitk

        from mflag_monai.dicom import read_seg

        seg = pydicom.dcmread(seg_file, stop_before_pixels=True)
        masks = read_seg(seg_file)
        numbers = [int(s.SegmentNumber) for s in sorted(seg.SegmentSequence, key=lambda s: int(s.SegmentNumber))]
        label = np.zeros((int(seg.Rows), int(seg.Columns)), dtype=np.uint8)
        for number, mask in zip(numbers, masks.values()):
            label[mask] = number
        reference = sitk.ReadImage(self.get_image_uri(image_id))
        image = sitk.GetImageFromArray(label.reshape((1,) * (reference.GetDimension() - 2) + label.shape))
        image.CopyInformation(reference)
        sitk.WriteImage(image, output, True)
        return output

    def datalist(self, full_path: bool = True) -> list[dict[str, Any]]:
        """The final labels for training, as the bundle's loader reads them: each image as its DICOM file, each
        label as a ``(rows, columns)`` PNG (MONAI Label's list holds the NIfTI conversions of both)."""
        import pydicom
        from PIL import Image

        out = []
        masks = Path(self._datastore_path) / "masks"
        for item in super().datalist(full_path=True):
            source = dicom_source(item["image"])
            if source is None:
                out.append(item)
                continue
            header = pydicom.dcmread(source, stop_before_pixels=True)
            mask = label_mask(item["label"], (int(header.Rows), int(header.Columns)))
            png = masks / f"{source.parent.name}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(mask, 0, 255).astype(np.uint8)).save(png)
            out.append({"image": str(source), "label": str(png)})
        if not full_path:
            out = [{k: os.path.relpath(v, self._datastore_path) for k, v in item.items()} for item in out]
        return out

    def json(self) -> dict[str, Any]:
        """The cached images and labels, plus every listed series not fetched yet (its id, nothing cached)."""
        out = super().json()
        objects = out.setdefault("objects", {})
        for image_id in self.list_images():
            objects.setdefault(image_id, {"image": {"ext": "", "info": {"cached": False}}, "labels": {}})
        return out
