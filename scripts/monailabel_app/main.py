"""MONAI Label app serving this repository's segmentation and classification bundles, offline.

    monailabel start_server --app scripts/monailabel_app --studies studies --host 127.0.0.1 --port 8000

The bundles are used where they are (``bundles/<name>`` next to this folder, or ``--conf bundles_dir DIR``); nothing
is downloaded: no model zoo, no SAM. Settings (``--conf KEY VALUE``):

- ``bundles_dir``: folder holding ``segmentation/`` and ``classification/`` (default: the repository's ``bundles/``).
- ``models``: comma-separated bundles to serve (default ``segmentation,classification``).
- ``image_size``, ``encoder_depth``: the values the served models were trained with, when not the bundles' defaults.
- ``skip_trainers``: ``true`` leaves out the segmentation trainer.
- ``preload``: ``true`` loads the networks at start.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lib import bundle_overrides
from lib.infers import ClassificationInfer, SegmentationInfer
from lib.trainers import SegmentationTrain
from monailabel.config import settings
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
        """A local datastore that also lists DICOM files (remote datastores as MONAI Label makes them)."""
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return LocalDatastore(
            self.studies,
            extensions=datastore_extensions(list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)),
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

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
