"""A NaN or infinite loss stops training at once, naming the step and the batch's files; nothing from that step is
saved (no "best" model, no final weights), and the process does not end as a success."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from torch import nn

from mflag_monai.engines import MFLAGTrainer
from mflag_monai.handlers.non_finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from mflag_monai.losses import MFLAGLoss
from mflag_monai.networks import build_mflag

TEXTS = ["no pneumothorax .", "moderate cardiomegaly .", "small left pleural effusion .", "lungs are clear ."]


def test_pretraining_stops_before_the_step_naming_the_files(tiny_bert_dir: Path) -> None:
    torch.manual_seed(0)
    model = build_mflag(image_depth=18, text_model=tiny_bert_dir, proj_hidden_dim=64, proj_out_dim=32)
    good = {"image": torch.randn(4, 3, 48, 48), "report": TEXTS, "image_path": [f"/data/ok{i}.png" for i in range(4)]}
    bad_images = torch.randn(4, 3, 48, 48)
    bad_images[1] = float("inf")
    bad = {"image": bad_images, "report": TEXTS, "image_path": [f"/data/bad{i}.dcm" for i in range(4)]}
    params = [p for p in model.parameters() if p.requires_grad]
    trainer = MFLAGTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[good, bad, good],
        network=model,
        optimizer=torch.optim.AdamW(params, lr=1e-3),
        loss_function=MFLAGLoss(),
    )
    saved = []
    trainer.add_event_handler(Events.COMPLETED, lambda e: saved.append("final"))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: saved.append(e.state.iteration))
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.run()
    message = str(caught.value)
    assert "at epoch 1, iteration 2" in message and "/data/bad1.dcm" in message and "\n" not in message
    assert saved == [1]  # the bad step completed nothing, and the run did not complete
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the optimizer never stepped on it


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_downstream_training_stops_at_the_first_non_finite_loss(bad: float) -> None:
    batches = [
        {"image": torch.randn(2, 4), "label": torch.tensor([[0.0, 1.0], [1.0, 0.0]]), "image_path": ["a.png", "b.png"]},
        {"image": torch.randn(2, 4), "label": torch.tensor([[bad, 1.0], [1.0, 0.0]]), "image_path": ["c.png", "d.png"]},
        {"image": torch.randn(2, 4), "label": torch.tensor([[0.0, 1.0], [1.0, 0.0]]), "image_path": ["e.png", "f.png"]},
    ]
    net = _Net()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=batches,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=nn.BCEWithLogitsLoss(),
        train_handlers=[StopOnNonFiniteLoss()],
    )
    best = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: best.append("best model saved"))
    trainer.add_event_handler(Events.COMPLETED, lambda e: best.append("final model saved"))
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, iteration 2.*c\.png, d\.png"):
        trainer.run()
    assert best == []
