"""BatchNorm running statistics of upright images: re-estimated with the evaluation preprocessing at each epoch end.

Why: BatchNorm trains on batch statistics, and its running statistics (what eval mode and every downstream task use)
average the batches it was trained on: *augmented* images, rotated by up to 90° with zero-filled corners, warped and
contrast-stretched. Upright, centre-cropped images (evaluation, downstream) have other activation statistics, and the
mismatch compounds layer by layer. On the demo (ResNet-18, batch 128, 20 epochs from random init) the deepest layers'
running variance was 2–13× the variance of upright images' activations, and in eval mode every image's projection
landed on nearly the same point (uniformity ≈ 0.000, alignment 3.11, worse than the 2.0 of unrelated vectors) while
train mode on the same images was healthy (uniformity −1.43, alignment 1.46). Re-estimating the statistics on training
images with the evaluation preprocessing restored eval mode (−1.49, 1.57); re-estimating them on augmented images did
not (−0.001, 3.15), and without the rotation the collapse was much smaller: the shift is the augmentation's, made worse
by the orthogonality loss (which favours sparse, sample-specific raw features). Training itself is unchanged: train
mode never reads running statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn

from ..data.subset import fixed_subset, model_batches, select_split, subset_dataset
from ..networks.mflag import TextInputs
from ..networks.utils import unwrap_model
from ..utils.dist import rank
from .geometry import engine_text_inputs

logger = logging.getLogger(__name__)

__all__ = ["BatchNormRecalibration", "recalibrate_batchnorm"]


class _BatchForward(nn.Module):
    """The network behind the one-argument call ``update_bn`` makes: a batch dict in, the model's forward pass, the
    images counted once the pass is through."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.training = net.training  # update_bn restores this module's mode, so it must be the network's
        self.seen = 0

    def forward(self, batch: dict[str, Any]) -> None:
        self.net(batch["images"], texts=batch["texts"], text_features=batch["text_features"])
        self.seen += len(batch["images"])


@torch.no_grad()
def recalibrate_batchnorm(
    network: nn.Module,
    dataset: Sequence[Mapping],
    text_inputs: Callable[[dict], TextInputs],
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    image_key: str = "image",
) -> int:
    """Replace every BatchNorm's running statistics by their average over ``dataset`` under the current weights.

    The pass is ``torch.optim.swa_utils.update_bn``: the model runs in train mode without gradients with each
    BatchNorm's statistics reset and its ``momentum`` set to ``None`` (a cumulative average over the batches);
    momenta and the model's mode are restored afterwards. A last batch of one image is left out (no batch variance).
    When no batch can be formed, the statistics are left as they were.

    Returns:
        the number of images the statistics were estimated on.
    """
    net = unwrap_model(network)
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    # What update_bn does not do: put the old statistics back when no batch was formed (it leaves them reset), and
    # restore momenta and mode when a forward pass raises (it restores them only after a complete pass).
    saved = [
        (m, m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms
    ]
    was_training = net.training
    forward = _BatchForward(net)
    batches = (
        {"images": images, "texts": texts, "text_features": features}
        for images, texts, features in model_batches(dataset, text_inputs, device, batch_size, image_key, min_size=2)
    )
    try:
        update_bn(batches, forward)  # batches are on `device` and float32 already: no device for update_bn to move to
    finally:
        for m, momentum, mean, var, count in saved:
            m.momentum = momentum
            if forward.seen == 0:  # nothing measured: keep what there was
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
        net.train(was_training)
    return forward.seen


class BatchNormRecalibration:
    """Re-estimate the pre-training model's BatchNorm statistics at the end of every epoch (see the module docstring).

    Attach it before the handlers that evaluate, checkpoint or export the model, so that all of them see statistics
    of the current weights. Under DDP it runs on rank 0 (DDP broadcasts rank 0's buffers at the next forward pass).

    Args:
        data: a datalist dict or a list of entries.
        transform: deterministic evaluation preprocessing (e.g. ``cxr_eval_transforms``): downstream tasks see
            upright, centre-cropped images, not the training augmentation.
        split: the datalist split to estimate on.
        max_samples: size of the fixed, evenly spread subset; 0 disables the handler (the paper's behaviour).
        batch_size: images per forward pass.
        cache: keep the preprocessed subset in memory.
        skip_bad_images: leave out images that fail to load instead of stopping the run.
        image_key: the batch's image key.
    """

    def __init__(
        self,
        data: Mapping[str, Sequence[Mapping]] | Sequence[Mapping],
        transform: Callable,
        split: str = "training",
        max_samples: int = 1024,
        batch_size: int = 32,
        cache: bool = True,
        skip_bad_images: bool = False,
        image_key: str = "image",
    ) -> None:
        self.data = data
        self.transform = transform
        self.split = split
        self.max_samples = int(max_samples)
        self.batch_size = int(batch_size)
        self.cache = cache
        self.skip_bad_images = skip_bad_images
        self.image_key = image_key
        self._dataset: Sequence[Mapping] | None = None

    def attach(self, engine: Engine) -> None:
        """Run at every epoch end (nothing when ``max_samples`` is 0)."""
        if self.max_samples > 0:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def dataset(self) -> Sequence[Mapping]:
        """The fixed, preprocessed subset (built on first use)."""
        if self._dataset is None:
            split, entries = select_split(self.data, self.split, fallback=None)
            entries = fixed_subset(entries, self.max_samples)
            label = f"{split} (BatchNorm statistics)"
            self._dataset = subset_dataset(entries, self.transform, self.cache, self.skip_bad_images, label)
        return self._dataset

    def __call__(self, engine: Engine) -> None:
        """Re-estimate the statistics of the engine's network."""
        if rank() > 0:
            return
        network = engine.network  # type: ignore[attr-defined]
        text_inputs = engine_text_inputs(engine)
        seen = recalibrate_batchnorm(
            network, self.dataset(), text_inputs, engine.state.device, self.batch_size, self.image_key
        )
        logger.info("BatchNorm statistics re-estimated on %d %s images (evaluation preprocessing).", seen, self.split)
