"""Image–report similarity of the pre-training bundle's inference: each image's embedding against its report.

With reports (``--reports``), :func:`score_reports` reads the ``embeddings.csv``/``.npz`` that
:class:`~mflag_monai.handlers.EmbeddingWriter` wrote and writes ``similarity.csv`` (each image's cosine similarity to
its own report and that report's rank among all reports) and ``similarity.json`` (the retrieval recall over the set).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics.retrieval import report_match, retrieval_recall
from ..networks.text_encoder import FrozenTextEncoder
from ..transforms.text import assemble_report
from ..utils.dicom import DICOM_UIDS
from ..utils.io import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

__all__ = ["read_reports", "score_reports"]


def read_reports(reports: str | os.PathLike, images: Sequence[str]) -> dict[str, str]:
    """``{image path: report text}`` for the ``images`` that have a report.

    ``reports`` is a CSV with ``image`` and ``report`` columns (``image``: the path, the file name or the file name
    without suffix), or a folder of ``.txt`` files named after the image (``<stem>.txt``) or after its study folder
    (``<parent folder>.txt``, the MIMIC-CXR layout: ``s5000.txt`` for the images in ``s5000/``).
    """
    reports = Path(reports)
    found: dict[str, str] = {}
    if reports.is_dir():
        texts = {p.stem: p for p in reports.rglob("*.txt")}
        for image in images:
            path = texts.get(Path(image).stem) or texts.get(Path(image).parent.name)
            if path is not None:
                found[image] = path.read_text(errors="replace").strip()
        return found
    if not reports.is_file():
        raise FileNotFoundError(f"--reports: no CSV file or folder of .txt reports at {reports}")
    with reports.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"image", "report"} <= set(rows[0]):
        raise ValueError(f"{reports}: a reports CSV needs 'image' and 'report' columns, found {sorted(rows[0])}")
    by_key = {r["image"]: r["report"] for r in rows}
    for image in images:
        path = Path(image)
        for key in (image, path.name, path.stem):
            if key in by_key:
                found[image] = by_key[key]
                break
    return found


@torch.no_grad()
def score_reports(
    output_dir: str | os.PathLike,
    reports: str | os.PathLike,
    network: torch.nn.Module,
    text_model: str,
    pooling: str = "cls",
    max_length: int = 512,
    device: str | torch.device = "cpu",
) -> dict:
    """Cosine similarity of each image's projection to its report's, in the space M-FLAG aligned them.

    Reads ``embeddings.csv``/``.npz`` of ``output_dir``, encodes the reports with the frozen language model the
    encoder was pre-trained against and the network's ``text_projector``, and writes ``similarity.csv`` (per image:
    similarity to its own report, the rank of that report among all, best first) and ``similarity.json``
    (recall@1/5/10 both ways; identical report texts count as matches).
    """
    output_dir = Path(output_dir)
    with (output_dir / "embeddings.csv").open(newline="") as f:
        index = list(csv.DictReader(f))
    projections = torch.from_numpy(np.load(output_dir / "embeddings.npz")["projection"])
    # the text pre-training encoded: impression + findings (the whole report when it has neither header)
    texts = {
        k: assemble_report(v) or " ".join(v.split())
        for k, v in read_reports(reports, [r["image"] for r in index]).items()
    }
    rows = [i for i, r in enumerate(index) if r["image"] in texts]
    if not rows:
        raise ValueError(f"None of the {len(index)} images has a report in {reports}")
    distinct, match = report_match([texts[index[i]["image"]] for i in rows])
    encoder = FrozenTextEncoder(text_model, pooling=pooling, max_length=max_length).to(device)
    network = network.to(device).eval()
    text_emb = torch.cat(
        [
            F.normalize(network.text_projector(encoder(distinct[s : s + 64])), dim=-1).float().cpu()
            for s in range(0, len(distinct), 64)
        ]
    )
    image_emb = F.normalize(projections[rows].float(), dim=-1)
    sim = image_emb @ text_emb.T
    own_sim = sim[match]  # one own report per image, in row order
    ranks = (sim > own_sim[:, None]).sum(1) + 1
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["image", *DICOM_UIDS, "similarity", "rank_of_own_report", "num_reports"])
    for k, i in enumerate(rows):
        writer.writerow(
            [
                index[i]["image"],
                *(index[i][u] for u in DICOM_UIDS),
                f"{float(own_sim[k]):.6f}",
                int(ranks[k]),
                len(distinct),
            ]
        )
    atomic_write_bytes(output_dir / "similarity.csv", out.getvalue().encode())
    summary = {
        "num_images": len(rows),
        "num_images_without_report": len(index) - len(rows),
        "num_distinct_reports": len(distinct),
        "mean_similarity_own_report": float(own_sim.mean()),
        "mean_similarity_other_reports": float(sim[~match].mean()) if (~match).any() else None,
        **retrieval_recall(sim, match),
        "text_model": str(text_model),
    }
    atomic_write_json(summary, output_dir / "similarity.json")
    logger.info("Image-report similarity of %d images written to %s", len(rows), output_dir / "similarity.csv")
    return summary
