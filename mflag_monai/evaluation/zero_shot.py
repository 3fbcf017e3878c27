"""Zero-shot classification from text prompts and image–report retrieval with a pre-trained M-FLAG model.

M-FLAG maps images into the (projected) space of a frozen language model, so a label can be scored by how close an
image's projection is to the projection of prompts describing the label, without any labelled training image. The
pre-trained model is rebuilt by :func:`mflag_monai.networks.load_pretrained_mflag`; the retrieval metrics are in
:mod:`mflag_monai.metrics.retrieval`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.data import DataLoader, Dataset
from tqdm import tqdm

from ..metrics.retrieval import report_match, retrieval_recall
from ..networks import MFLAG
from ..transforms import cxr_eval_transforms
from ..utils.io import atomic_write_json

__all__ = [
    "default_prompts",
    "embed_images",
    "embed_texts",
    "run_retrieval",
    "run_zero_shot",
    "zero_shot_probabilities",
]

# Positive and negative phrasings per label, in the style of radiology reports.
_PROMPTS: dict[str, tuple[list[str], list[str]]] = {
    "Atelectasis": (["Atelectasis.", "Bibasilar atelectasis.", "Subsegmental atelectasis."], ["No atelectasis."]),
    "Cardiomegaly": (
        ["Cardiomegaly.", "The heart is enlarged.", "Moderate cardiomegaly."],
        ["Heart size is normal.", "No cardiomegaly."],
    ),
    "Consolidation": (
        [
            "Focal consolidation.",
            "Consolidation in the lower lobe.",
            "Airspace consolidation concerning for pneumonia.",
        ],
        ["No focal consolidation."],
    ),
    "Edema": (["Pulmonary edema.", "Mild interstitial edema."], ["No pulmonary edema."]),
    "Pleural Effusion": (
        ["Pleural effusion.", "Small left pleural effusion.", "Moderate right pleural effusion."],
        ["No pleural effusion."],
    ),
    "Effusion": (["Pleural effusion.", "Small left pleural effusion."], ["No pleural effusion."]),
    "Pneumothorax": (["Pneumothorax.", "Large apical pneumothorax."], ["No pneumothorax."]),
    "Pneumonia": (["Pneumonia.", "Consolidation concerning for pneumonia."], ["No pneumonia.", "Lungs are clear."]),
    "No Finding": (["No acute cardiopulmonary process.", "Lungs are clear."], ["Acute cardiopulmonary abnormality."]),
    "normal": (["No acute cardiopulmonary process.", "Lungs are clear."], []),
    "pneumonia": (["Pneumonia.", "Focal consolidation concerning for pneumonia."], []),
    "COVID-19": (["Bilateral patchy opacities concerning for COVID-19 pneumonia."], []),
}


def default_prompts(names: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """``{label: {"positive": [...], "negative": [...]}}``; labels without curated prompts get "<label>." / "No <label>."."""
    out = {}
    for name in names:
        pos, neg = _PROMPTS.get(name, ([f"{name}."], [f"No {name.lower()}."]))
        out[name] = {"positive": list(pos), "negative": list(neg)}
    return out


@torch.no_grad()
def embed_images(
    model: MFLAG, data: Sequence[Mapping], resize: int, image_size: int, batch_size: int = 32, device="cpu"
) -> torch.Tensor:
    """L2-normalised image projections ``[N, D]`` of the datalist entries' ``image`` files."""
    loader = DataLoader(
        Dataset(list(data), cxr_eval_transforms(resize=resize, image_size=image_size)), batch_size=batch_size
    )
    out = []
    for batch in tqdm(loader, desc="Images", unit="batch"):
        out.append(model.encode_image(batch["image"].to(device), normalize=True).cpu())
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: MFLAG, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised text projections ``[N, D]`` through the frozen language model and the text projector."""
    out = []
    for start in range(0, len(texts), batch_size):
        out.append(model.encode_text(list(texts[start : start + batch_size]), normalize=True).cpu())
    return torch.cat(out)


def zero_shot_probabilities(
    image_emb: torch.Tensor,
    model: MFLAG,
    prompts: Mapping[str, Mapping[str, Sequence[str]]],
    problem: str,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Per-label probabilities ``[N, C]`` from prompt similarities.

    Multi-label: for each label, a softmax over (mean similarity to its positive prompts, to its negative prompts).
    Multi-class: a softmax over the classes' mean positive-prompt similarities. ``temperature`` only sharpens the
    probabilities; the ranking (hence AUROC) does not depend on it.
    """
    columns = []
    for spec in prompts.values():
        pos = (image_emb @ embed_texts(model, spec["positive"]).T).mean(1)
        if problem == "multi-label" and spec.get("negative"):
            neg = (image_emb @ embed_texts(model, spec["negative"]).T).mean(1)
            columns.append(torch.softmax(torch.stack([pos, neg], 1) / temperature, 1)[:, 0])
        else:
            columns.append(pos)
    scores = torch.stack(columns, 1)
    if problem == "multi-class":
        return torch.softmax(scores / temperature, 1)
    return scores if all(spec.get("negative") for spec in prompts.values()) else torch.sigmoid(scores / temperature)


def _labels_matrix(data: Sequence[Mapping], num_classes: int, problem: str) -> torch.Tensor:
    if problem == "multi-class":
        return F.one_hot(torch.tensor([int(e["label"]) for e in data]), num_classes).float()
    return torch.tensor([list(map(float, e["label"])) for e in data])


def run_zero_shot(
    model: MFLAG,
    data: Sequence[Mapping],
    names: Sequence[str],
    problem: str,
    out_dir: str | os.PathLike,
    resize: int,
    image_size: int,
    prompts: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    device="cpu",
) -> dict:
    """Zero-shot classification of ``data`` (no training): per-label AUROC and mean, written to ``zero_shot.json``."""
    from ..metrics import classification_report
    from ..utils.plots import save_roc_curves

    prompts = prompts or default_prompts(names)
    image_emb = embed_images(model, data, resize, image_size, device=device)
    probs = zero_shot_probabilities(image_emb, model, prompts, problem)
    labels = _labels_matrix(data, len(names), problem)
    report = classification_report(probs, labels, names, problem)
    report.update({"method": "zero-shot (text prompts)", "prompts": prompts})
    out_dir = Path(out_dir)
    atomic_write_json(report, out_dir / "zero_shot.json")
    save_roc_curves(probs.numpy(), labels.numpy(), names, list(report["auroc"].values()), out_dir / "zero_shot_roc.png")
    print(f"Zero-shot mean AUROC {report['mean_auroc']:.4f} on {len(data)} images -> {out_dir / 'zero_shot.json'}")
    return report


def run_retrieval(
    model: MFLAG, data: Sequence[Mapping], out_dir: str | os.PathLike, resize: int, image_size: int, device="cpu"
) -> dict:
    """Image→report and report→image recall@1/5/10 on image–report pairs (identical report texts count as matches)."""
    images = embed_images(model, data, resize, image_size, device=device)
    distinct, match = report_match([e["report"] for e in data])
    text_emb = embed_texts(model, distinct)
    sim = images @ text_emb.T
    report = {
        **retrieval_recall(sim, match),
        "num_images": len(data),
        "num_distinct_reports": len(distinct),
        "chance_R@1_image_to_text": 1.0 / len(distinct),
    }
    atomic_write_json(report, Path(out_dir) / "retrieval.json")
    print(
        f"Retrieval on {len(data)} pairs: image->text {report['image_to_text']}, text->image {report['text_to_image']}"
    )
    return report
