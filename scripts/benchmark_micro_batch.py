"""How far is a micro-batched (gradient-cached) pre-training step from one pass over the whole batch, in train mode?

Gradient caching computes the loss of the whole batch from encoder features computed one micro-batch at a time. The
loss terms are exact given those features, but in train mode the encoder's BatchNorm normalises each micro-batch with
its own statistics, so the features, the loss and the gradients differ from a single pass (as per-GPU BatchNorm
differs from one large GPU). This measures by how much, on a trained pre-training encoder and its own training images
(augmented as in training), for several micro-batch sizes: the encoder gradient's cosine to the single pass's, and the
relative change of the loss. Two controls must hold for the table to mean anything: with the encoder's BatchNorm in
eval mode the cosine is 1 and the loss change 0 (the caching itself is exact), and two different batches give
gradients far from cosine 1 (the cosine can tell). oneDNN is off, so that the CPU's convolution kernels add no error
of their own (``python -m mflag_monai.utils.numerics``).

    python scripts/benchmark_micro_batch.py --models bundles/pretrain/models --batch 48 --micro 6 12 16 24 \\
        --json eval/micro_batch.json

Prints a table (mean and range over ``--draws`` batches) and writes it as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

from mflag_monai.data import load_datalist
from mflag_monai.engines.pretrain import gradient_cached_backward
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import load_pretrained_mflag
from mflag_monai.transforms import cxr_pretrain_transforms


def encoder_gradient(model: torch.nn.Module) -> torch.Tensor:
    """The encoder's gradient as one float64 vector (a float32 dot product over millions of entries is off by ~1e-3)."""
    return torch.cat([p.grad.flatten() for p in model.image_encoder.parameters() if p.grad is not None]).double()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def one_step(model, images, text_features, micro: int | None, encoder_eval: bool) -> tuple[float, torch.Tensor]:
    """Loss and encoder gradient of one step on a copy of ``model`` (single pass when ``micro`` is ``None``)."""
    net = copy.deepcopy(model).train()
    if encoder_eval:
        net.image_encoder.eval()
    net.zero_grad(set_to_none=True)
    loss_fn = MFLAGLoss()
    if micro is None:
        loss = loss_fn(net(images, text_features=text_features))["loss"]
        loss.backward()
    else:
        loss = gradient_cached_backward(net, images, text_features, loss_fn, micro)["loss"]
    return float(loss.detach()), encoder_gradient(net)


def batches(models: Path, batch: int, draws: int, seed: int, info: dict) -> list[tuple[torch.Tensor, list[str]]]:
    """``draws`` training batches of the bundle's own datalist, augmented as in training (seeded)."""
    datalist = load_datalist(models.parent / "datalists" / "datalist_pretrain.json")["training"]
    if len(datalist) < 2 * batch:
        raise SystemExit(f"error: {len(datalist)} training pairs; need at least {2 * batch} for --batch {batch}")
    chain = cxr_pretrain_transforms(resize=info["resize"], image_size=info["image_size"], cache_dtype=torch.uint8)
    chain.set_random_state(seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        picked = [datalist[i] for i in torch.randperm(len(datalist), generator=g)[:batch].tolist()]
        items = [chain({"image": e["image"]}) for e in picked]
        out.append((torch.stack([torch.as_tensor(x["image"]) for x in items]), [e["report"] for e in picked]))
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("bundles/pretrain/models"), help="a trained models/ folder")
    parser.add_argument("--batch", type=int, default=48, help="images per step")
    parser.add_argument("--micro", type=int, nargs="+", default=[6, 12, 16, 24], help="micro-batch sizes")
    parser.add_argument("--draws", type=int, default=3, help="batches to average over")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args(argv)

    started = time.time()
    torch.manual_seed(args.seed)
    with torch.backends.mkldnn.flags(enabled=False):
        model, info = load_pretrained_mflag(args.models)
        data = batches(args.models, args.batch, args.draws, args.seed, info)
        rows: dict[str, dict[str, list[float]]] = {}
        controls = {"eval-mode cosine": [], "eval-mode loss change": [], "other batch cosine": []}
        for index, (images, reports) in enumerate(data):
            with torch.no_grad():
                text = model.language_features(reports)
            loss, grad = one_step(model, images, text, None, encoder_eval=False)
            for micro in args.micro:
                m_loss, m_grad = one_step(model, images, text, micro, encoder_eval=False)
                row = rows.setdefault(str(micro), {"cosine": [], "loss change": []})
                row["cosine"].append(cosine(grad, m_grad))
                row["loss change"].append(abs(m_loss - loss) / abs(loss))
            e_loss, e_grad = one_step(model, images, text, None, encoder_eval=True)
            c_loss, c_grad = one_step(model, images, text, min(args.micro), encoder_eval=True)
            controls["eval-mode cosine"].append(cosine(e_grad, c_grad))
            controls["eval-mode loss change"].append(abs(c_loss - e_loss) / abs(e_loss))
            other_images, other_reports = data[(index + 1) % len(data)]
            with torch.no_grad():
                other_text = model.language_features(other_reports)
            _, other = one_step(model, other_images, other_text, None, encoder_eval=False)
            controls["other batch cosine"].append(cosine(grad, other))

    table = {micro: {k: summary(v) for k, v in row.items()} for micro, row in rows.items()}
    checks = {k: summary(v) for k, v in controls.items()}
    print(f"{info.get('image_depth')}-layer encoder from {args.models}, batch {args.batch}, {args.draws} batches, "
          f"train mode, oneDNN off")  # fmt: skip
    print(f"{'micro-batch':>12} | {'gradient cosine to one pass':>30} | {'relative loss change':>24}")
    for micro, row in table.items():
        cos, change = row["cosine"], row["loss change"]
        print(f"{micro:>12} | {cos['mean']:>8.3f} ({cos['min']:.3f}-{cos['max']:.3f})".ljust(46)
              + f" | {change['mean']:>8.2%} ({change['min']:.2%}-{change['max']:.2%})")  # fmt: skip
    print("controls: " + "; ".join(f"{k} {v['mean']:.4g}" for k, v in checks.items()))
    valid = checks["eval-mode cosine"]["min"] > 0.9999 and checks["other batch cosine"]["max"] < 0.9
    if not valid:
        print("warning: a control failed; the table does not measure what it says", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join(sys.argv), "models": str(args.models), "encoder": info, "batch": args.batch,
            "draws": args.draws, "train_mode": True, "onednn": False, "micro_batches": table, "controls": checks,
            "controls_pass": valid, "machine": f"{platform.platform()}, {torch.get_num_threads()} threads",
            "seconds": round(time.time() - started, 1),
        }, indent=1) + "\n")  # fmt: skip
    return 0 if valid else 1


if __name__ == "__main__":
    raise SystemExit(main())
