"""MONAI Label train task for the segmentation bundle.

MONAI Label's :class:`BundleTrainTask` runs ``configs/train.yaml`` with ``monai.bundle.run`` and these overrides:
``bundle_root``, ``device``, ``train#trainer#max_epochs``, ``train#dataset#data`` and ``validate#dataset#data``
(the datastore's image/label pairs), and ``train#handlers`` (the bundle's own list, with a ``CheckpointLoader``
of ``models/model.pt`` into ``$@network`` put first). ``tests/bundles/test_monailabel_overrides.py`` checks that
the bundle accepts exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monailabel.tasks.train.bundle import BundleTrainTask


class SegmentationTrain(BundleTrainTask):
    """:class:`BundleTrainTask` with the app's bundle overrides (``image_size``, ``image_depth``) added.

    Args:
        path: the bundle folder.
        conf: the app's ``--conf`` pairs.
        overrides: bundle config values to add to MONAI Label's own overrides.
        kwargs: passed to :class:`BundleTrainTask`.
    """

    def __init__(
        self, path: str, conf: Mapping[str, str], overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.overrides = dict(overrides or {})
        super().__init__(path, dict(conf), **kwargs)

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        overrides.update(self.overrides)
        return overrides
