"""mflag_monai.engines.utils: the loss terms the handlers log, for both trainers' outputs."""

from __future__ import annotations

import torch

from mflag_monai.engines import loss_terms


def test_loss_terms_of_the_pretraining_and_detection_outputs() -> None:
    pretrain = {"loss": torch.tensor(3.0), "loss_align": 1.0, "loss_orth": 2.0, "loss_orth_floor": 0.5}
    assert loss_terms(pretrain) == {"loss": 3.0, "loss_align": 1.0, "loss_orth": 2.0, "loss_orth_floor": 0.5}
    detection = {"image": torch.zeros(1, 3, 4, 4), "loss": torch.tensor(1.5), "loss_cls": 1.0, "loss_box": 0.5}
    assert list(loss_terms(detection)) == ["loss", "loss_cls", "loss_box"]  # the image is not a loss
    assert loss_terms({}) == {}  # a first iteration whose images all failed to load
