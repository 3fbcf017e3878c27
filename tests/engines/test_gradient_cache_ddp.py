"""Gradient-cached steps under DDP (2 CPU processes, gloo): the same update as DDP's own single pass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from mflag_monai.data.text_features import TextFeatureCache, text_key
from mflag_monai.engines import MFLAGTrainer
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import MFLAG, build_image_encoder

RUNS = {"plain": (None, False), "micro": (2, False), "plain_gather": (None, True), "micro_gather": (2, True)}


def _keep_encoder_batchnorm_in_eval_mode(model: MFLAG) -> None:
    """Running statistics in the encoder, so that micro-batches normalise exactly like the whole batch."""
    for m in model.image_encoder.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
            m.train = lambda mode=True, m=m: m  # network.train() at each step leaves it alone


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # micro-batches of 2 against the single pass over 6: oneDNN's fp32 convolution backward depends on the batch
    # size on some CPUs (1.9e-3 off float64 on an AMD EPYC), PyTorch's native kernels agree with float64 to ~1e-6;
    # both paths run on those, so the tolerances below measure the gradient caching, not the CPU
    torch.backends.mkldnn.enabled = False
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for name, (micro, gather) in RUNS.items():
            torch.manual_seed(0)  # the same initial weights on both ranks, as DDP requires
            model = MFLAG(build_image_encoder(18), text_hidden_size=8, proj_hidden_dim=16, proj_out_dim=8)
            _keep_encoder_batchnorm_in_eval_mode(model)
            g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
            images, features = torch.randn(6, 3, 32, 32, generator=g), torch.randn(6, 8, generator=g)
            texts = [f"report {rank} {i}" for i in range(6)]  # their features come from the text cache
            data = [{"image": images, "report": texts}]
            cache = TextFeatureCache(features, [text_key(t) for t in texts], {})
            trainer = MFLAGTrainer(
                device=torch.device("cpu"),
                max_epochs=1,
                train_data_loader=data,
                network=DistributedDataParallel(model),
                optimizer=torch.optim.SGD(model.parameters(), lr=1e-2),
                loss_function=MFLAGLoss(orth_gather=gather),
                micro_batch_size=micro,
                text_cache=cache,
            )
            trainer.run()
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            torch.save({"state": state, "loss": trainer.state.output["loss"].item()}, f"{out}/{name}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_micro_batched_step_equals_the_ddp_single_pass(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, 29611, str(tmp_path)), nprocs=2, join=True)
    runs = {(name, r): torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=True) for name in RUNS for r in (0, 1)}
    params = [
        n
        for n, _ in MFLAG(
            build_image_encoder(18), text_hidden_size=8, proj_hidden_dim=16, proj_out_dim=8
        ).named_parameters()
    ]
    for plain, micro in (("plain", "micro"), ("plain_gather", "micro_gather")):
        for r in (0, 1):
            assert runs[micro, r]["loss"] == pytest.approx(runs[plain, r]["loss"], rel=1e-5)
            for key, value in runs[plain, r]["state"].items():  # parameters and running statistics
                torch.testing.assert_close(runs[micro, r]["state"][key], value, rtol=1e-4, atol=1e-6, msg=key)
        for key in params:  # gradients were averaged across ranks: one model after the step
            torch.testing.assert_close(runs[micro, 1]["state"][key], runs[micro, 0]["state"][key], msg=key)
    # the gathered loss really differs from the per-rank one (the test would not notice a dropped gather otherwise)
    assert abs(runs["plain_gather", 0]["loss"] - runs["plain", 0]["loss"]) > 1e-3
