"""Detection engines: MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator`` with a detection iteration.

A detector (:class:`~mflag_monai.networks.CXRRetinaNetDetector`) does not fit the supervised ``(inputs, targets) →
prediction → loss_function`` step: in training it takes the boxes and returns its own losses, in evaluation it
returns a variable number of boxes per image. So only ``_iteration`` is replaced (as :class:`MFLAGTrainer` does);
events, handlers (stats, TensorBoard, checkpoints, validation, early stopping), metrics and AMP flags are MONAI's.

Batches come from a ``DataLoader`` with ``collate_fn=monai.data.utils.no_collation``: a list of per-image dicts
(images of one size after the transforms, boxes of varying number), which is also what the detector consumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from ..networks.utils import batchnorm_statistics_kept, unwrap_model

__all__ = ["DetectionEvaluator", "DetectionTrainer", "stack_images"]


def _as_items(batchdata: Any) -> list[dict]:
    """A list of per-image dicts from a ``no_collation`` batch (a single dict is one image)."""
    if batchdata is None:
        raise ValueError("Must provide batch data for current iteration.")
    items = [batchdata] if isinstance(batchdata, Mapping) else list(batchdata)
    if not items or not all(isinstance(i, Mapping) for i in items):
        raise TypeError("detection batches are lists of per-image dicts: use collate_fn=monai.data.utils.no_collation")
    return [dict(i) for i in items]


def stack_images(
    items: Sequence[Mapping[str, Any]], key: str, device: torch.device | str, non_blocking: bool = False
) -> torch.Tensor:
    """``[B, C, H, W]`` plain tensor of the items' images on ``device`` (metadata stays with the items)."""
    # plain tensors: a MetaTensor would route every operation of the network through its metadata handling (slow)
    images = [i[key].as_tensor() if isinstance(i[key], MetaTensor) else torch.as_tensor(i[key]) for i in items]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images of a batch must have one size (resize them in the transforms), got {sorted(shapes)}")
    return torch.stack(images).to(device, non_blocking=non_blocking)


class DetectionTrainer(SupervisedTrainer):
    """Trains a MONAI detector (``network(images, targets)`` returning a dict of losses).

    The total loss is ``cls_weight · classification + box_weight · box regression``. The iteration output holds
    ``image``, ``loss``, ``loss_cls`` and ``loss_box`` (:func:`~mflag_monai.engines.loss_terms` reads them for the
    handlers).

    Args:
        image_key, box_key, label_key: keys of the per-image dicts (boxes ``[N, 4]`` float, labels ``[N]`` int).
        cls_weight, box_weight: weights of the two loss terms.
        other arguments: as :class:`monai.engines.SupervisedTrainer` (``loss_function`` is not used: the detector
            computes its losses).
    """

    def __init__(
        self,
        *args: Any,
        image_key: str = "image",
        box_key: str = "boxes",
        label_key: str = "labels",
        cls_weight: float = 1.0,
        box_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("loss_function", None)
        kwargs.setdefault("decollate", False)  # the output is a few scalar losses: nothing to decollate
        super().__init__(*args, **kwargs)
        self.image_key, self.box_key, self.label_key = image_key, box_key, label_key
        self.cls_weight, self.box_weight = cls_weight, box_weight

    def _iteration(self, engine: DetectionTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        items = _as_items(batchdata)
        device = engine.state.device
        images = stack_images(items, self.image_key, device, engine.non_blocking)
        targets = [
            {
                self.box_key: torch.as_tensor(i[self.box_key]).float().reshape(-1, 4).to(device),
                self.label_key: torch.as_tensor(i[self.label_key]).long().reshape(-1).to(device),
            }
            for i in items
        ]
        engine.state.output = {Keys.IMAGE: images}
        detector = unwrap_model(engine.network)  # DDP-wrapped or not: the loss keys live here

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        use_scaler = engine.amp and engine.scaler is not None
        with torch.autocast("cuda", enabled=bool(use_scaler), **engine.amp_kwargs):
            losses = engine.network(images, targets)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            loss = self.cls_weight * losses[detector.cls_key] + self.box_weight * losses[detector.box_reg_key]
        engine.state.output.update(
            {
                Keys.LOSS: loss,
                "loss_cls": losses[detector.cls_key].detach(),
                "loss_box": torch.as_tensor(losses[detector.box_reg_key]).detach(),
            }
        )
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if use_scaler:
            engine.scaler.scale(loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            loss.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.state.output[Keys.LOSS] = loss.detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


class DetectionEvaluator(SupervisedEvaluator):
    """Runs a MONAI detector in evaluation mode (``network(images)`` returning boxes per image).

    The iteration output is a list with one dict per image: the input item (``image`` with its metadata, and the
    true ``boxes``/``labels`` when the data has them) plus ``pred_boxes`` ``[D, 4]``, ``pred_scores`` ``[D]`` and
    ``pred_labels`` ``[D]`` (on the CPU). Postprocessing transforms run on each image's dict (MONAI does that for
    list outputs), so box writers can use the image metadata.

    With ``compute_loss``, each image's dict also holds ``loss``: its batch's training loss (``cls_weight ·
    classification + box_weight · box regression``, as :class:`DetectionTrainer` weighs them), for
    :class:`~mflag_monai.metrics.ValidationLoss`. It costs one more forward pass per batch, with the detector in
    training mode (that is where MONAI's detector computes losses) and every BatchNorm's running statistics put back.

    Args:
        image_key: key of the images in the per-image dicts.
        pred_prefix: prefix of the prediction keys.
        compute_loss: also compute the training loss of batches with true boxes.
        box_key, label_key, cls_weight, box_weight: as :class:`DetectionTrainer` (for ``compute_loss``).
        other arguments: as :class:`monai.engines.SupervisedEvaluator`.
    """

    def __init__(
        self,
        *args: Any,
        image_key: str = "image",
        pred_prefix: str = "pred_",
        compute_loss: bool = False,
        box_key: str = "boxes",
        label_key: str = "labels",
        cls_weight: float = 1.0,
        box_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("decollate", False)  # the output is per image already
        super().__init__(*args, **kwargs)
        self.image_key, self.pred_prefix = image_key, pred_prefix
        self.compute_loss, self.box_key, self.label_key = compute_loss, box_key, label_key
        self.cls_weight, self.box_weight = cls_weight, box_weight

    def _batch_loss(self, engine: DetectionEvaluator, items: list[dict], images: torch.Tensor) -> float | None:
        """The training loss of this batch (``None`` when an image has no true boxes to compare with)."""
        if not all(self.box_key in i and self.label_key in i for i in items):
            return None
        device = engine.state.device
        targets = [
            {
                self.box_key: torch.as_tensor(i[self.box_key]).float().reshape(-1, 4).to(device),
                self.label_key: torch.as_tensor(i[self.label_key]).long().reshape(-1).to(device),
            }
            for i in items
        ]
        detector = unwrap_model(engine.network)
        was_training = engine.network.training
        # the hard-negative sampler draws random numbers: fork the generators so training's draws stay the same
        forked = [device] if torch.device(device).type == "cuda" else []
        engine.network.train()
        try:
            with torch.random.fork_rng(devices=forked), torch.no_grad(), batchnorm_statistics_kept(engine.network):
                with torch.autocast("cuda", enabled=bool(engine.amp), **engine.amp_kwargs):
                    losses = engine.network(images, targets)
        finally:
            engine.network.train(was_training)
        return float(self.cls_weight * losses[detector.cls_key] + self.box_weight * losses[detector.box_reg_key])

    def _iteration(self, engine: DetectionEvaluator, batchdata: Any) -> list[dict]:  # type: ignore[override]
        items = _as_items(batchdata)
        images = stack_images(items, self.image_key, engine.state.device, engine.non_blocking)
        detector = unwrap_model(engine.network)
        with engine.mode(engine.network), torch.autocast("cuda", enabled=bool(engine.amp), **engine.amp_kwargs):
            detections = engine.network(images)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss = self._batch_loss(engine, items, images) if self.compute_loss else None
        keys = {
            "boxes": detector.target_box_key,
            "scores": detector.pred_score_key,
            "labels": detector.target_label_key,
        }
        outputs = []
        for item, det in zip(items, detections):
            out = dict(item)
            for name, key in keys.items():
                value = det[key].detach().cpu()
                out[self.pred_prefix + name] = value if name == "labels" else value.float()
            if loss is not None:
                out[Keys.LOSS] = loss
            outputs.append(out)
        engine.state.batch = items  # per image, so that postprocessing runs image by image
        engine.state.output = outputs
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return outputs
