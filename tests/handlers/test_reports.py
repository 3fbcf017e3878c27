"""mflag_monai.handlers.reports: the history and metrics files, and the collect/write shape of the report writers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from mflag_monai.handlers.base import ReportWriter, output_rows
from mflag_monai.handlers.reports import ClassificationReportWriter, HistoryWriter, MetricsJSONWriter


def test_history_of_a_resumed_run_replaces_the_later_epochs(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps([{"epoch": 1, "loss": 9.0}, {"epoch": 2, "loss": 8.0}, {"epoch": 3, "loss": 7.0}]))
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(loss=float(e.state.epoch)))
    HistoryWriter(path).attach(engine)
    engine.load_state_dict({"epoch": 1, "max_epochs": 3, "epoch_length": 1})  # resumed after epoch 1
    engine.run([0])
    history = json.loads(path.read_text())
    assert [(h["epoch"], h["loss"]) for h in history] == [(1, 9.0), (2, 2.0), (3, 3.0)]


def test_metrics_json_holds_scalars_as_floats_and_the_info(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(val=torch.tensor(0.25), n=3))
    MetricsJSONWriter(tmp_path / "metrics.json", info={"split": "test"}).attach(engine)
    engine.run([0], max_epochs=1)
    content = json.loads((tmp_path / "metrics.json").read_text())
    assert content == {"metrics": {"val": 0.25, "n": 3.0}, "split": "test"}


class Counting(ReportWriter):
    """A minimal report writer: what a subclass has to write."""

    def __init__(self) -> None:
        self.rows: list = []
        self.written: list[int] = []

    def reset(self) -> None:
        self.rows = []

    def collect(self, engine: Engine) -> None:
        self.rows.extend(output_rows(engine))

    def write(self, engine: Engine) -> None:
        self.written.append(len(self.rows))


def test_report_writer_collects_every_row_and_starts_each_run_empty() -> None:
    engine = Engine(lambda e, b: [{"x": b}, {"x": b}] if b else {"x": b})  # a list output, then a single dict
    writer = Counting()
    writer.attach(engine)
    engine.run([1, 0], max_epochs=1)
    engine.run([1], max_epochs=1)
    assert writer.written == [3, 2]


def test_classification_report_of_a_second_run_is_that_run_only(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    writer = ClassificationReportWriter(path, names=["a"])
    first = Engine(lambda e, b: [{"pred": [0.9], "label": [1]}, {"pred": [0.1], "label": [0]}])
    writer.attach(first)
    first.run([0], max_epochs=1)
    assert json.loads(path.read_text())["mean_auroc"] == 1.0
    second = Engine(lambda e, b: [{"pred": [0.2], "label": [1]}, {"pred": [0.8], "label": [0]}])
    writer.attach(second)
    second.run([0], max_epochs=1)
    assert json.loads(path.read_text())["mean_auroc"] == 0.0  # with the first run's rows kept it would be 0.75
