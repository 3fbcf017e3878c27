"""The M-FLAG pre-training engine: MONAI's ``SupervisedTrainer`` with an image–report iteration.

``SupervisedTrainer`` assumes ``(inputs, targets) → one loss``; M-FLAG's step takes images *and* report texts (or
cached text features) and yields two loss terms that we want to log separately, so only the iteration is replaced.
Everything else (events, handlers, metrics, AMP flag, ``torch.compile`` option) is MONAI's.

Large batches on small memory (``micro_batch_size``): the orthogonality loss is a statistic of the whole batch, so
gradient accumulation (several small ``C``) is not the same loss. Gradient caching computes the loss of the whole
batch while the encoder holds one micro-batch of activations at a time; see :func:`gradient_cached_backward`. The loss
terms are exact given the features, but in train mode the encoder's BatchNorm normalises each micro-batch with its own
statistics (as per-GPU BatchNorm does in multi-GPU training), so loss and gradients equal the single pass only with the
encoder's BatchNorm in eval mode or with one micro-batch.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..networks.mflag import batch_text_inputs
from ..networks.utils import batchnorm_statistics_kept, unwrap_model
from ..utils.errors import InputError, non_finite_loss_error

__all__ = ["MFLAGTrainer", "gradient_cached_backward", "paper_restart_period", "resolve_amp_dtype"]

logger = logging.getLogger(__name__)


def resolve_amp_dtype(amp_dtype: torch.dtype | str, device: torch.device | str) -> torch.dtype:
    """``"auto"``: bf16 on GPUs that support it, else fp16 on GPU; bf16 on CPU (CPU autocast has no fp16 scaler)."""
    if isinstance(amp_dtype, torch.dtype):
        return amp_dtype
    if amp_dtype == "auto":
        if torch.device(device).type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16
    return {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}[
        amp_dtype
    ]


def paper_restart_period(epochs: int, num_samples: int, batch_size: int, fraction: float = 0.4) -> int:
    """``T_0`` of the paper's ``CosineAnnealingWarmRestarts``: ``int(epochs·N // 4 // batch · 0.4)``, at least 1."""
    return max(1, int(epochs * num_samples // 4 // batch_size * fraction))


def _rng_states(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The CPU and (on CUDA) device random states, to replay a stochastic forward pass exactly."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_states(states: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(states[0])
    if states[1] is not None:
        torch.cuda.set_rng_state(states[1], device)


def gradient_cached_backward(
    model: nn.Module,
    images: torch.Tensor,
    text_features: torch.Tensor,
    loss_function: Callable[..., Mapping[str, torch.Tensor]],
    micro_batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
    on_forward: Callable[[], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Back-propagate the loss of a whole batch, holding one micro-batch of encoder activations.

    (a) encode the images in micro-batches without autograd, giving ``Z`` for the whole batch; (b) with ``Z`` as a
    leaf, run both projection heads and the loss on the whole batch and back-propagate, which leaves the heads'
    gradients and ``dL/dZ``; (c) per micro-batch, encode again with autograd and back-propagate its slice of
    ``dL/dZ`` into the encoder. Gradients are accumulated into ``.grad`` (zero them before).

    What differs from one pass over the whole batch: the encoder's BatchNorm normalises each micro-batch with its
    own statistics (as per-GPU BatchNorm does in multi-GPU training); with the encoder's BatchNorm in eval mode, or
    one micro-batch, loss and gradients are those of the single pass. The running statistics see every image once.
    Random ops inside the encoder (e.g. dropout) replay the same draws in (a) and (c).

    Args:
        model: an :class:`~mflag_monai.networks.MFLAG` (not wrapped in DDP).
        images: ``[B, C, H, W]`` on the model's device, already augmented.
        text_features: ``[B, H]`` frozen language-model features.
        loss_function: ``MFLAGOutput -> {"loss", ...}`` (a pre-training objective: M-FLAG's, InfoNCE, ...).
        micro_batch_size: images per encoder pass.
        autocast: a factory of the mixed-precision context, entered around every forward pass.
        backward: how to back-propagate the total loss (e.g. through a ``GradScaler``); ``dL/dZ`` carries its scale.
        on_forward: called once the loss is computed (for engine events).

    Returns:
        the loss function's output for the whole batch.
    """
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    encoder = model.image_encoder
    chunks = images.split(micro_batch_size)
    rng = []
    with torch.no_grad(), batchnorm_statistics_kept(encoder):  # (a)
        features = []
        for chunk in chunks:
            rng.append(_rng_states(images.device))
            with autocast():
                features.append(encoder(chunk))
    z = torch.cat(features).detach().requires_grad_(True)
    with autocast():  # (b)
        losses = loss_function(model.project(z, text_features))
    if on_forward is not None:
        on_forward()
    backward(losses["loss"])
    grad_z = z.grad
    after_loss_rng = _rng_states(images.device)
    start = 0
    for chunk, state in zip(chunks, rng):  # (c)
        _set_rng_states(state, images.device)
        with autocast():
            chunk_features = encoder(chunk)
        chunk_features.backward(grad_z[start : start + len(chunk)])
        start += len(chunk)
    _set_rng_states(after_loss_rng, images.device)
    return dict(losses)


def _average_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """All-reduce and average gradients over the process group: what DDP's reducer does, for a step that did not
    go through DDP's forward (gradient caching calls the wrapped module's parts directly)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    world = dist.get_world_size()
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class MFLAGTrainer(SupervisedTrainer):
    """Pre-trains an :class:`~mflag_monai.networks.MFLAG` model on batches of images and reports.

    Each batch is a dict with ``image_key`` (``[B, C, H, W]``) and ``report_key`` (``B`` strings); the text side goes
    through :func:`~mflag_monai.networks.batch_text_inputs` (cached features, else the frozen language model). The
    loss function is a pre-training objective (:mod:`mflag_monai.losses.objectives`: M-FLAG's, InfoNCE); the
    iteration output holds ``loss`` and every other term it returns. Images lost to decoding errors are counted by
    :class:`~mflag_monai.handlers.SkippedImageCounter`.

    Args:
        image_key, report_key: batch keys.
        text_cache: a :class:`~mflag_monai.data.TextFeatureCache`; reports found in it skip the language model,
            the others are encoded on the fly (never replaced by zeros).
        amp_dtype: autocast dtype when ``amp`` is on: ``"auto"`` (bf16 where the GPU supports it, else fp16),
            ``torch.float16`` (with the grad scaler on GPU) or ``torch.bfloat16``.
        channels_last: feed images in channels-last memory format (faster convolutions on recent GPUs/CPUs).
        micro_batch_size: images per encoder pass; ``None`` or the batch size: one plain pass. Smaller: the loss of
            the whole batch through gradient caching (:func:`gradient_cached_backward`; exact given the features, with
            the encoder's BatchNorm normalising per micro-batch in train mode), with the encoder holding only this many
            images' activations. The bundle's inferer is not used on that path.
        batch_transform: applied without gradients to the batch's images once they are on the device, before the
            plain or the gradient-cached step (so both passes of the gradient cache see the same images), e.g. a
            :class:`~mflag_monai.transforms.CXRBatchAugmentation` (``augment_on: device``).
        demo: the run trains on the built-in demo data: a batch below the orthogonality floor is then expected (a
            few minutes on a CPU, not a study of the method) and said once at INFO with the settings for real data,
            instead of the warning a real run gets.
        other arguments: as :class:`monai.engines.SupervisedTrainer`.
    """

    def __init__(
        self,
        *args,
        image_key: str = "image",
        report_key: str = "report",
        text_cache=None,
        amp_dtype: torch.dtype | str = "auto",
        channels_last: bool = False,
        micro_batch_size: int | None = None,
        batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        demo: bool = False,
        **kwargs,
    ) -> None:
        kwargs.setdefault("decollate", False)  # the output is a few scalar losses: nothing to decollate
        super().__init__(*args, **kwargs)
        self.image_key, self.report_key = image_key, report_key
        self.text_cache = text_cache
        self.demo = bool(demo)
        self.amp_dtype = resolve_amp_dtype(amp_dtype, self.state.device)
        self.channels_last = channels_last
        self.batch_transform = batch_transform
        if channels_last:
            self.network.to(memory_format=torch.channels_last)
        self._use_scaler = (
            self.amp and self.amp_dtype == torch.float16 and torch.device(self.state.device).type == "cuda"
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self._use_scaler)
        if micro_batch_size is not None and int(micro_batch_size) < 1:
            raise InputError(f"must be a positive number of images, got {micro_batch_size}", "--micro_batch_size")
        self.micro_batch_size = None if micro_batch_size is None else int(micro_batch_size)
        loader = self.data_loader
        batch = getattr(loader, "batch_size", None)
        if batch and getattr(loader, "drop_last", False) and len(loader.dataset) < batch:
            raise InputError(
                f"batch_size {batch} is larger than the {len(loader.dataset)} training samples, so no full batch "
                "can be formed: lower batch_size or add data (the demo: --demo_studies)",
                "--batch_size",
            )
        self.add_event_handler(Events.STARTED, self._warn_below_floor)

    def _warn_below_floor(self, engine: MFLAGTrainer) -> None:
        """Warn when the batch is so far below the feature width that the orthogonality loss is mostly its floor."""
        batch = getattr(engine.data_loader, "batch_size", None)
        if batch is None:
            return
        network = unwrap_model(engine.network)
        orth = getattr(engine.loss_function, "orthogonality", None)
        feature = getattr(engine.loss_function, "orth_feature", "image_feature")
        if orth is None or not hasattr(network, "image_encoder"):
            return
        dim = network.image_encoder.feature_dim if feature == "image_feature" else network.image_projector.out_dim
        effective = batch * (dist.get_world_size() if orth.gathers() else 1)
        if effective < dim / 4:
            micro = self.micro_batch_size or batch
            floor = orth.floor(batch, int(dim))
            advice = (
                f"--batch_size {max(512, int(dim) // 4)} --micro_batch_size {micro} "
                "(gradient caching; bundles/pretrain/docs/README.md)"
            )
            if self.demo:
                engine.logger.info(
                    f"Demo run: batches of {effective} features of width {dim} keep it to minutes on a CPU, so the "
                    f"orthogonality loss stays near its floor ({floor:.1f}, logged as loss_orth_floor). On real data "
                    f"the project recommends, in the same memory: {advice}."
                )
                return
            engine.logger.warning(
                f"The orthogonality loss sees batches of {effective} features of width {dim}: it cannot go below "
                f"{floor:.1f} (logged as loss_orth_floor), and its gradient is mostly that floor. A larger batch in "
                f"the same memory: {advice}."
            )

    def _iteration(self, engine: MFLAGTrainer, batchdata: dict) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        if self.image_key not in batchdata or len(batchdata[self.image_key]) < 2:
            # the batch's images failed to load (skip setting on), or one is left, which BatchNorm cannot train on
            return engine.state.output or {}
        device = engine.state.device
        images = batchdata[self.image_key].to(device, non_blocking=engine.non_blocking)
        if self.batch_transform is not None:
            with torch.no_grad():
                images = self.batch_transform(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        texts, features = batch_text_inputs(batchdata, engine.network, self.text_cache, self.report_key)
        if features is not None:
            features = features.to(device, non_blocking=engine.non_blocking).float()

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        if self.micro_batch_size is not None and self.micro_batch_size < len(images):
            losses = self._gradient_cached_step(engine, images, texts, features)
        else:
            losses = self._plain_step(engine, images, texts, features)
        if not torch.isfinite(losses["loss"].detach()).all():  # before the step: the weights stay finite, nothing saves
            raise non_finite_loss_error(losses["loss"].detach(), engine.state.epoch, engine.state.iteration, batchdata)
        if self._use_scaler:
            self.scaler.step(engine.optimizer)
            self.scaler.update()
        else:
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        # every term the objective returns, for the handlers to log (no loss names are wired in here)
        engine.state.output = {
            Keys.LOSS: losses["loss"].detach(),
            **{k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in losses.items() if k != "loss"},
        }
        return engine.state.output

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(torch.device(self.state.device).type, dtype=self.amp_dtype, enabled=bool(self.amp))

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self._use_scaler else loss).backward()

    def _plain_step(self, engine: MFLAGTrainer, images, texts, features) -> Mapping[str, torch.Tensor]:
        """One forward/backward of the whole batch."""
        with self._autocast():
            # through the inferer (SimpleInferer by default) so that a bundle can swap it, as MONAI's trainers do
            output = engine.inferer(images, engine.network, texts=texts, text_features=features)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            losses = engine.loss_function(output)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        self._backward(losses["loss"])
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        return losses

    def _gradient_cached_step(self, engine: MFLAGTrainer, images, texts, features) -> Mapping[str, torch.Tensor]:
        """The whole-batch loss with micro-batched encoder passes (:func:`gradient_cached_backward`; exact given the
        features, with the encoder's BatchNorm normalising per micro-batch in train mode).

        Under DDP the wrapped module's parts are called directly (DDP's reducer expects one forward and one backward
        per step), so buffers are broadcast and gradients averaged here, as DDP would.
        """
        wrapped = engine.network
        model = unwrap_model(wrapped)
        ddp = isinstance(wrapped, DistributedDataParallel) and dist.is_available() and dist.is_initialized()
        if ddp and wrapped.broadcast_buffers:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)
        if features is None:  # no cache: the frozen language model over micro-batches too
            features = torch.cat(
                [
                    model.language_features(texts[i : i + self.micro_batch_size])
                    for i in range(0, len(texts), self.micro_batch_size)
                ]
            ).to(images.device)

        def forward_done() -> None:
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            engine.fire_event(IterationEvents.LOSS_COMPLETED)

        losses = gradient_cached_backward(
            model,
            images,
            features,
            engine.loss_function,
            self.micro_batch_size,
            autocast=self._autocast,
            backward=self._backward,
            on_forward=forward_done,
        )
        if ddp:
            _average_gradients([p for p in model.parameters() if p.requires_grad])
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        return losses
