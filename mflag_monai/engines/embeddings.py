"""Inference of the pre-training bundle: image embeddings of a folder of radiographs, and image–report similarity.

``configs/inference.yaml`` runs :class:`~mflag_monai.networks.MFLAGImageEmbedder` over the inputs; the
:class:`EmbeddingWriter` handler writes, in the run's output folder,

* ``embeddings/<stem>.npz`` per input: ``feature`` (encoder), ``projection`` (shared image–report space) and the
  identifiers (``image``, ``StudyInstanceUID``, ``SeriesInstanceUID``, ``SOPInstanceUID``; empty for PNG/JPG);
* ``embeddings.npz``: the ``feature`` ``[N, F]`` and ``projection`` ``[N, P]`` arrays of all inputs, row ``i`` = row
  ``i`` of the index;
* ``embeddings.csv``: the index (row, image, the three UIDs, the per-input file).

With reports (:func:`score_reports`), ``similarity.csv`` gives each image's cosine similarity to its own report and
that report's rank among all reports, and ``similarity.json`` the retrieval recall over the set.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events

from ..utils.dicom import DICOM_UIDS, dicom_identifiers, source_of
from ..utils.io import atomic_write_bytes, atomic_write_json
from .zero_shot import recall_at_k

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingWriter", "pretrained_settings", "read_reports", "score_reports"]

INDEX_COLUMNS = ("row", "image", *DICOM_UIDS, "file")


def pretrained_settings(models_dir: str | os.PathLike) -> dict:
    """What ``models/encoder.json`` (written by pre-training) records: depth, sizes, language model, widths.

    Empty when the bundle has not been trained (the config's defaults then apply, as for ``verify_net_in_out``).
    """
    sidecar = Path(models_dir) / "encoder.json"
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def _unique_name(stem: str, taken: set[str]) -> str:
    name, n = stem, 2
    while name in taken:  # same file name in two sub-folders
        name, n = f"{stem}_{n}", n + 1
    taken.add(name)
    return name


class EmbeddingWriter:
    """Write the embeddings of every input of an inference run (see the module docstring for the files).

    Args:
        output_dir: the run's folder (created on the first write).
        split: ``output -> (feature, projection)``, e.g. the network's ``split``.
        image_key: the key of the input image in the engine's output (its ``meta`` names the file).
    """

    def __init__(self, output_dir: str | os.PathLike, split: Callable, image_key: str = "image") -> None:
        self.output_dir = Path(output_dir)
        self.split = split
        self.image_key = image_key
        self.index: list[dict[str, str]] = []
        self.features: list[np.ndarray] = []
        self.projections: list[np.ndarray] = []
        self._names: set[str] = set()

    def attach(self, engine: Engine) -> None:
        """Write per input after each iteration, the array and the index on completion."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        """Write this batch's per-input files and keep their rows."""
        rows = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        folder = self.output_dir / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            pred = torch.as_tensor(row["pred"]).detach().float().cpu().reshape(1, -1)
            feature, projection = (t[0].numpy() for t in self.split(pred))
            image = row[self.image_key]
            source = source_of(image)
            record = {"row": str(len(self.index)), "image": source, **dicom_identifiers(image)}
            name = _unique_name(Path(source).stem or f"input_{len(self.index)}", self._names)
            path = folder / f"{name}.npz"
            buffer = io.BytesIO()
            ids = {k: np.array(v) for k, v in record.items() if k != "row"}
            np.savez(buffer, feature=feature, projection=projection, **ids)
            atomic_write_bytes(path, buffer.getvalue())
            record["file"] = str(path.relative_to(self.output_dir))
            self.index.append(record)
            self.features.append(feature)
            self.projections.append(projection)

    def write(self, engine: Engine) -> None:
        """Write ``embeddings.npz`` and ``embeddings.csv``."""
        if not self.index:
            logger.warning("No inputs: nothing written to %s", self.output_dir)
            return
        buffer = io.BytesIO()
        np.savez(buffer, feature=np.stack(self.features), projection=np.stack(self.projections))
        atomic_write_bytes(self.output_dir / "embeddings.npz", buffer.getvalue())
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(self.index)
        atomic_write_bytes(self.output_dir / "embeddings.csv", text.getvalue().encode())
        logger.info("Embeddings of %d images written to %s", len(self.index), self.output_dir)


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
    from ..networks import FrozenTextEncoder

    output_dir = Path(output_dir)
    with (output_dir / "embeddings.csv").open(newline="") as f:
        index = list(csv.DictReader(f))
    projections = torch.from_numpy(np.load(output_dir / "embeddings.npz")["projection"])
    from ..transforms.text import assemble_report

    # the text pre-training encoded: impression + findings (the whole report when it has neither header)
    texts = {
        k: assemble_report(v) or " ".join(v.split())
        for k, v in read_reports(reports, [r["image"] for r in index]).items()
    }
    rows = [i for i, r in enumerate(index) if r["image"] in texts]
    if not rows:
        raise ValueError(f"None of the {len(index)} images has a report in {reports}")
    distinct = list(dict.fromkeys(texts[index[i]["image"]] for i in rows))
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
    own = torch.tensor([distinct.index(texts[index[i]["image"]]) for i in rows])
    match = torch.zeros_like(sim, dtype=torch.bool)
    match[torch.arange(len(rows)), own] = True
    own_sim = sim[torch.arange(len(rows)), own]
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
        "image_to_text": recall_at_k(sim, match),
        "text_to_image": recall_at_k(sim.T, match.T),
        "text_model": str(text_model),
    }
    atomic_write_json(summary, output_dir / "similarity.json")
    logger.info("Image-report similarity of %d images written to %s", len(rows), output_dir / "similarity.csv")
    return summary
