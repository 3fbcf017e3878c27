"""A tqdm progress bar with the loss terms, attached the MONAI way."""

from __future__ import annotations

from collections.abc import Callable

from ignite.engine import Engine

from ..engines.utils import loss_terms

__all__ = ["ProgressBarHandler"]


class ProgressBarHandler:
    """Attach ignite's tqdm ``ProgressBar`` the MONAI way (``handler.attach(engine)``), showing the loss terms."""

    def __init__(self, output_transform: Callable = loss_terms, desc: str = "Epoch", persist: bool = True) -> None:
        self.output_transform = output_transform
        self.desc = desc
        self.persist = persist

    def attach(self, engine: Engine) -> None:
        """Show a bar per epoch with the running loss terms."""
        from ignite.handlers import ProgressBar

        ProgressBar(persist=self.persist, desc=self.desc).attach(engine, output_transform=self.output_transform)
