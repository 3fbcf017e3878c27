"""MONAI Label app serving this repository's segmentation and classification bundles, offline.

    monailabel start_server --app scripts/monailabel_app --studies studies --host 127.0.0.1 --port 8000

The bundles are used where they are (``bundles/<name>`` next to this folder, or ``--conf bundles_dir DIR``); nothing
is downloaded: no model zoo, no SAM. Settings (``--conf KEY VALUE``):

- ``bundles_dir``: folder holding ``segmentation/`` and ``classification/`` (default: the repository's ``bundles/``).
- ``models``: comma-separated bundles to serve (default ``segmentation,classification``).
- ``image_size``, ``image_depth``: the values the served models were trained with, when not the bundles' defaults.
- ``skip_trainers``: ``true`` leaves out the segmentation trainer.
- ``preload``: ``true`` loads the networks at start.
- ``modalities``: with ``--studies http(s)://.../dicom-web``, the Modality values listed (default ``CR,DX,DR``;
  ``all`` lists every image series).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from lib import bundle_overrides
from lib.datastore import RadiographDICOMwebDatastore, parse_modalities
from lib.infers import ClassificationInfer, SegmentationInfer
from lib.trainers import SegmentationTrain
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.utils.others.generic import strtobool

from mflag_monai.utils.formats import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

DEFAULT_BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"
INFERS = {"segmentation": SegmentationInfer, "classification": ClassificationInfer}
# The local datastore lists only nii/nrrd/jpg/png/tif by default; radiographs also come as DICOM files.
IMAGE_PATTERNS = [f"*{suffix}" for suffix in IMAGE_SUFFIXES]


def datastore_extensions(configured: list[str]) -> list[str]:
    """The configured ``MONAI_LABEL_DATASTORE_FILE_EXT`` patterns plus every image file the loader reads, without
    duplicates."""
    return list(dict.fromkeys([*configured, *IMAGE_PATTERNS]))


class MFLAGApp(MONAILabelApp):
    """Serves the 2D chest X-ray bundles: ``segmentation`` (mask) and ``classification`` (labels with scores)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.bundles_dir = Path(conf.get("bundles_dir") or DEFAULT_BUNDLES_DIR).expanduser().resolve()
        names = [n.strip() for n in conf.get("models", ",".join(INFERS)).split(",") if n.strip()]
        unknown = sorted(set(names) - set(INFERS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; this app serves {sorted(INFERS)}")
        self.model_names = names
        self.overrides = bundle_overrides(conf)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="mflag-monai chest X-ray",
            description="Segmentation and classification bundles on the M-FLAG encoder (2D radiographs)",
            version="0.1.0",
        )

    def init_datastore(self) -> Datastore:
        """A local datastore that also lists DICOM files, or a DICOMweb datastore of radiographs (XNAT and DSA as
        MONAI Label makes them)."""
        if self.studies.startswith(("http://", "https://")):
            if settings.MONAI_LABEL_DATASTORE.lower() in ("xnat", "dsa"):
                return super().init_datastore()
            self.studies = self.studies.strip().rstrip("/")
            return self._dicomweb_datastore()
        return LocalDatastore(
            self.studies,
            extensions=datastore_extensions(list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)),
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def _dicomweb_datastore(self) -> Datastore:
        """MONAI Label's DICOMweb client and cache settings, without its start-up download of dcmqi (the SEG is
        written with highdicom here) and with a search for radiographs (``--conf modalities``)."""
        session = None
        if "googleapis.com" in self.studies:
            from dicomweb_client import DICOMwebClient
            from dicomweb_client.ext.gcp.session_utils import create_session_from_gcp_credentials

            client = DICOMwebClient(url=self.studies, session=create_session_from_gcp_credentials())
        else:
            username = settings.MONAI_LABEL_DATASTORE_USERNAME or settings.MONAI_LABEL_DICOMWEB_USERNAME
            password = settings.MONAI_LABEL_DATASTORE_PASSWORD or settings.MONAI_LABEL_DICOMWEB_PASSWORD
            if username and password:
                from dicomweb_client.session_utils import create_session_from_user_pass

                session = create_session_from_user_pass(username, password)
            client = DICOMwebClientX(
                url=self.studies,
                session=session,
                qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
                wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
                stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX,
            )
        cache = (settings.MONAI_LABEL_DATASTORE_CACHE_PATH or settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip()
        return RadiographDICOMwebDatastore(
            client,
            modalities=parse_modalities(self.conf.get("modalities")),
            search_filter=settings.MONAI_LABEL_DICOMWEB_SEARCH_FILTER,  # its Modality (CT) is replaced
            label_names=self._segmentation_labels(),
            algorithm=("mflag-monai segmentation", self._bundle_version("segmentation")),
            cache_path=cache or None,
            fetch_by_frame=settings.MONAI_LABEL_DICOMWEB_FETCH_BY_FRAME,
            convert_to_nifti=settings.MONAI_LABEL_DICOMWEB_CONVERT_TO_NIFTI,
        )

    def _metadata(self, name: str) -> dict:
        path = self.bundles_dir / name / "configs" / "metadata.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _segmentation_labels(self) -> dict[int, str]:
        """``{value: name}`` of the segmentation bundle's labels, read as MONAI Label reads them (``channel_def``
        without ``background``): the names of a saved label's segments."""
        pred = self._metadata("segmentation").get("network_data_format", {}).get("outputs", {}).get("pred", {})
        return {int(k): str(v) for k, v in pred.get("channel_def", {}).items() if str(v).lower() != "background"}

    def _bundle_version(self, name: str) -> str:
        return str(self._metadata(name).get("version", "0"))

    def init_infers(self) -> dict[str, InferTask]:
        """One infer task per served bundle that has a trained ``models/model.pt``."""
        infers: dict[str, InferTask] = {}
        for name in self.model_names:
            path = self.bundles_dir / name
            task = INFERS[name](str(path), self.conf, overrides=self.overrides)
            if not task.is_valid():  # BundleInferTask has logged what is missing
                logger.warning(
                    f"+++ Not serving {name}: no {path}/models/model.pt; train it first: "
                    f"python -m monai.bundle run training --config_file bundles/{name}/configs/train.yaml"
                )
                continue
            logger.info(f"+++ Adding Inferer:: {name} => {path}")
            infers[name] = task
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        """The segmentation trainer (train.yaml with MONAI Label's overrides), unless ``skip_trainers``."""
        if strtobool(self.conf.get("skip_trainers", "false")) or "segmentation" not in self.model_names:
            return {}
        task = SegmentationTrain(str(self.bundles_dir / "segmentation"), self.conf, overrides=self.overrides)
        return {"segmentation": task} if task.is_valid() else {}

    def init_strategies(self) -> dict[str, Strategy]:
        """Which image to annotate next: random or first unlabelled."""
        return {"random": Random(), "first": First()}


if __name__ == "__main__":  # pragma: no cover - a hint, the server is started by the monailabel CLI
    print(f"Start with: monailabel start_server --app {os.path.dirname(os.path.abspath(__file__))} --studies DIR")
