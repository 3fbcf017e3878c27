"""The M-FLAG pre-training engine: MONAI's ``SupervisedTrainer`` with an image–report iteration.

``SupervisedTrainer`` assumes ``(inputs, targets) → one loss``; M-FLAG's step takes images *and* report texts (or
cached text features) and yields two loss terms that we want to log separately, so only the iteration is replaced.
Everything else (events, handlers, metrics, AMP flag, ``torch.compile`` option) is MONAI's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

__all__ = ["MFLAGTrainer", "paper_restart_period", "loss_terms", "resolve_amp_dtype"]

LOSS_KEYS = ("loss", "loss_align", "loss_orth")


def resolve_amp_dtype(amp_dtype: torch.dtype | str, device: torch.device | str) -> torch.dtype:
    """``"auto"``: bf16 on GPUs that support it, else fp16 on GPU; bf16 on CPU (CPU autocast has no fp16 scaler)."""
    if isinstance(amp_dtype, torch.dtype):
        return amp_dtype
    if amp_dtype == "auto":
        if torch.device(device).type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16
    return {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}[amp_dtype]


def paper_restart_period(epochs: int, num_samples: int, batch_size: int, fraction: float = 0.4) -> int:
    """``T_0`` of the paper's ``CosineAnnealingWarmRestarts``: ``int(epochs·N // 4 // batch · 0.4)``, at least 1."""
    return max(1, int(epochs * num_samples // 4 // batch_size * fraction))


def loss_terms(output: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The loss terms of one iteration's output as floats (for stats and TensorBoard handlers)."""
    return {k: float(output[k]) for k in LOSS_KEYS if k in output}


class MFLAGTrainer(SupervisedTrainer):
    """Pre-trains an :class:`~mflag_monai.networks.MFLAG` model on batches of images and reports.

    Each batch is a dict with ``image_key`` (``[B, C, H, W]``) and either ``report_key`` (``B`` strings, encoded by
    the frozen language model) or ``feature_key`` (``[B, H]`` cached language-model features). The loss function
    is an :class:`~mflag_monai.losses.MFLAGLoss`. The iteration output holds ``loss``, ``loss_align``, ``loss_orth``.

    Args:
        image_key, report_key, feature_key: batch keys.
        text_cache: a :class:`~mflag_monai.data.TextFeatureCache`; reports found in it skip the language model,
            the others are encoded on the fly (never replaced by zeros).
        amp_dtype: autocast dtype when ``amp`` is on: ``"auto"`` (bf16 where the GPU supports it, else fp16),
            ``torch.float16`` (with the grad scaler on GPU) or ``torch.bfloat16``.
        channels_last: feed images in channels-last memory format (faster convolutions on recent GPUs/CPUs).
        other arguments: as :class:`monai.engines.SupervisedTrainer`.
    """

    def __init__(
        self,
        *args,
        image_key: str = "image",
        report_key: str = "report",
        feature_key: str = "text_feature",
        text_cache=None,
        amp_dtype: torch.dtype | str = "auto",
        channels_last: bool = False,
        **kwargs,
    ) -> None:
        kwargs.setdefault("decollate", False)  # the output is a few scalar losses: nothing to decollate
        super().__init__(*args, **kwargs)
        self.image_key, self.report_key, self.feature_key = image_key, report_key, feature_key
        self.text_cache = text_cache
        self.amp_dtype = resolve_amp_dtype(amp_dtype, self.state.device)
        self.channels_last = channels_last
        if channels_last:
            self.network.to(memory_format=torch.channels_last)
        self.skipped_images = 0  # images that failed to decode (with the dataset's skip setting on), whole run
        self._use_scaler = self.amp and self.amp_dtype == torch.float16 and torch.device(self.state.device).type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self._use_scaler)

    def _text_inputs(self, batchdata: dict) -> tuple[list[str] | None, torch.Tensor | None]:
        """Report texts for the language model, or their features (from the batch or the cache)."""
        if batchdata.get(self.feature_key) is not None:
            return None, torch.as_tensor(batchdata[self.feature_key])
        texts = list(batchdata[self.report_key])
        if self.text_cache is None:
            return texts, None
        features, missing = self.text_cache.lookup(texts)
        if missing.any():  # new reports: run the frozen model on those only
            network = getattr(self.network, "module", self.network)  # unwrap DDP
            fresh = network.encode_text([t for t, m in zip(texts, missing.tolist()) if m])
            features[missing] = fresh.to("cpu", features.dtype)
        return None, features

    def _iteration(self, engine: MFLAGTrainer, batchdata: dict) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        self.skipped_images += int(batchdata.get("skipped_images", 0))
        # kept among the epoch metrics, which the stats, TensorBoard and history handlers log at each epoch end
        engine.state.metrics["skipped_images"] = self.skipped_images
        if self.image_key not in batchdata or len(batchdata[self.image_key]) < 2:
            # the batch's images failed to load (skip setting on), or one is left, which BatchNorm cannot train on
            return engine.state.output or {}
        device = engine.state.device
        images = batchdata[self.image_key].to(device, non_blocking=engine.non_blocking)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        texts, features = self._text_inputs(batchdata)
        if features is not None:
            features = features.to(device, non_blocking=engine.non_blocking).float()

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        device_type = torch.device(device).type
        with torch.autocast(device_type=device_type, dtype=self.amp_dtype, enabled=bool(engine.amp)):
            # through the inferer (SimpleInferer by default) so that a bundle can swap it, as MONAI's trainers do
            output = engine.inferer(images, engine.network, texts=texts, text_features=features)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            losses = engine.loss_function(output)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if self._use_scaler:
            self.scaler.scale(losses["loss"]).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            self.scaler.step(engine.optimizer)
            self.scaler.update()
        else:
            losses["loss"].backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        engine.state.output = {Keys.LOSS: losses["loss"].detach(), **{k: losses[k] for k in LOSS_KEYS[1:]}}
        return engine.state.output
