"""mflag_monai.handlers.progress: the progress bar shows the loss terms of the trainers' outputs."""

from __future__ import annotations

from ignite.engine import Engine

from mflag_monai.engines import loss_terms
from mflag_monai.handlers.progress import ProgressBarHandler


def test_progress_bar_shows_the_loss_terms_by_default() -> None:
    assert ProgressBarHandler().output_transform is loss_terms


def test_progress_bar_reads_every_iteration_output_through_its_transform() -> None:
    seen: list[dict] = []

    def transform(output: dict) -> dict[str, float]:
        seen.append(output)
        return loss_terms(output)

    engine = Engine(lambda e, b: {"loss": float(b), "image": None})
    ProgressBarHandler(output_transform=transform, persist=False).attach(engine)
    engine.run([1, 2], max_epochs=1)
    assert [o["loss"] for o in seen] == [1.0, 2.0]
