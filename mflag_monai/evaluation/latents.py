"""The latent geometry of an M-FLAG model over a fixed set of image–report pairs: the encoder features and both
projections collected outside the training loop, their scalar diagnostics (``geom_*``), the spectrum file and plot,
and the projection-collapse alarm's text. The pre-training bundle's :class:`~mflag_monai.handlers.LatentGeometryHandler`
and :func:`~mflag_monai.evaluation.evaluate_geometry` both measure through here; the metric definitions are in
:mod:`mflag_monai.metrics.geometry`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..data.subset import model_batches
from ..networks.mflag import TextInputs
from ..networks.utils import batchnorm_statistics_kept, unwrap_model
from ..utils.io import atomic_write_json
from ..utils.plots import plot_spectra

__all__ = [
    "COLLAPSE_HELP",
    "GEOMETRY_METRICS",
    "LATENT_NAMES",
    "PREFIX",
    "TRAIN_MODE_PREFIX",
    "collapse_message",
    "collect_latents",
    "geometry_metrics",
    "write_geometry",
]

PREFIX = "geom_"
# the same metrics with BatchNorm normalising by each batch's own statistics, as in training (``batchnorm="batch"``)
TRAIN_MODE_PREFIX = "geom_trainmode_"
# the scalars of latent_geometry, logged as geom_<name>
GEOMETRY_METRICS = (
    "erank_feature",
    "erank_image_proj",
    "erank_text_proj",
    "alignment",
    "uniformity_image",
    "uniformity_text",
)
LATENT_NAMES = {"image_feature": "encoder feature", "image_proj": "image projection", "text_proj": "text projection"}


@torch.no_grad()
def collect_latents(
    network: nn.Module,
    dataset: Sequence[Mapping],
    text_inputs: Callable[[dict], TextInputs],
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    image_key: str = "image",
    batchnorm: str = "eval",
) -> dict[str, torch.Tensor]:
    """Encoder features and both projections (``[N, ·]`` float32 on the CPU) of every item of ``dataset``.

    The model runs without gradients and in float32; its previous mode is restored. ``batchnorm="eval"`` uses the
    running statistics (what a downstream task sees); ``"batch"`` normalises each batch of ``batch_size`` by its own
    statistics, as training does, with the running statistics left untouched. A gap between the two is the sign of a
    network that relies on batch-level information. Batches are collated by hand rather than by a ``DataLoader``: a
    loader draws its base seed from the global RNG, and the diagnostics must not change the training run they observe.
    """
    if batchnorm not in ("eval", "batch"):
        raise ValueError(f"batchnorm must be 'eval' or 'batch', got {batchnorm!r}")
    net = unwrap_model(network)
    was_training = net.training
    net.eval()
    batch_norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batchnorm == "batch":
        for m in batch_norms:
            m.train()
    out: dict[str, list[torch.Tensor]] = {"image_feature": [], "image_proj": [], "text_proj": []}
    kept = batchnorm_statistics_kept(net) if batchnorm == "batch" else contextlib.nullcontext()
    try:
        with kept:
            min_size = 2 if batchnorm == "batch" else 1  # a last batch of one has no batch statistics
            for images, texts, features in model_batches(dataset, text_inputs, device, batch_size, image_key, min_size):
                result = net(images, texts=texts, text_features=features)
                for name, parts in out.items():
                    parts.append(getattr(result, name).detach().float().cpu())
    finally:
        net.train(was_training)
    return {name: torch.cat(parts) for name, parts in out.items()}


def geometry_metrics(geometry: Mapping[str, object], prefix: str = PREFIX) -> dict[str, float]:
    """The scalar diagnostics of :func:`~mflag_monai.metrics.latent_geometry`'s result as ``{prefix + name: value}``."""
    return {prefix + name: float(geometry[name]) for name in GEOMETRY_METRICS}


def spectrum_plot(spectra: Mapping[str, Sequence[float]], metrics: Mapping[str, float], path: Path, title: str) -> Path:
    eranks = {"image_feature": "erank_feature", "image_proj": "erank_image_proj", "text_proj": "erank_text_proj"}
    labelled = {
        f"{LATENT_NAMES.get(k, k)} (erank {metrics.get(PREFIX + eranks.get(k, ''), float('nan')):.1f})": v
        for k, v in spectra.items()
    }
    return plot_spectra(labelled, path, title=title)


COLLAPSE_HELP = (
    "Each projection then maps most studies onto a few directions, so image-report retrieval and zero-shot "
    "classification fall towards chance and the encoder learns little about individual studies. Settings that "
    "help: --orth_feature image_proj (the orthogonality loss on the image projection), --freeze_text_projector true, "
    "--objective infonce (negatives in the loss), or a lower --learning_rate (bundles/pretrain/docs/README.md, "
    "'Projection collapse')."
)


def collapse_message(metrics: Mapping[str, float], threshold: float, epoch: int, samples: int) -> str | None:
    """The collapse alarm's text when the eval-mode effective rank of either projection is below ``threshold``,
    else ``None``."""
    image = metrics.get(PREFIX + "erank_image_proj", float("nan"))
    text = metrics.get(PREFIX + "erank_text_proj", float("nan"))
    if threshold <= 0 or samples - 1 < 2 * threshold:  # too few samples to tell a collapse from the subset's size
        return None
    if not (image < threshold or text < threshold):
        return None
    return (
        f"Projection collapse at epoch {epoch}: effective rank of the image projection {image:.1f}, of the report "
        f"projection {text:.1f} (alarm below {threshold:g}; at most {samples - 1} on {samples} samples). "
        + COLLAPSE_HELP
    )


def write_geometry(
    geometry: Mapping[str, object],
    output_dir: str | os.PathLike,
    json_name: str,
    split: str,
    samples: int,
    info: Mapping | None = None,
    png_name: str = "spectrum.png",
) -> tuple[Path, Path]:
    """Write ``{"metrics", "spectra", "split", "num_samples", **info}`` as JSON and the spectrum plot as PNG."""
    output_dir = Path(output_dir)
    metrics = geometry_metrics(geometry)
    content = {"metrics": metrics, "split": split, "num_samples": samples, **dict(info or {})}
    content["spectra"] = geometry["spectra"]  # last: the long lists
    if "train_mode_metrics" in geometry:
        content["train_mode_metrics"] = geometry["train_mode_metrics"]
    json_path = atomic_write_json(content, output_dir / json_name)
    where = f"epoch {info['epoch']}, " if info and "epoch" in info else ""
    title = f"Spectrum ({where}{split}, {samples} samples)"
    png_path = spectrum_plot(geometry["spectra"], metrics, output_dir / png_name, title)
    return json_path, png_path
