"""The metric protocols: names checked, and a description of what each task's metric computes under each."""

from __future__ import annotations

import pytest

from mflag_monai.metrics import PROTOCOLS, metric_description
from mflag_monai.metrics.protocol import check_protocol


def test_protocol_names() -> None:
    assert PROTOCOLS == ("standard", "mgca")
    assert [check_protocol(p) for p in PROTOCOLS] == list(PROTOCOLS)
    for wrong in ("MGCA", "coco", ""):
        with pytest.raises(ValueError, match="protocol"):
            check_protocol(wrong)


@pytest.mark.parametrize("task", ["detection", "segmentation", "classification"])
def test_descriptions_say_which_protocol(task: str) -> None:
    standard, mgca = metric_description(task), metric_description(task, "mgca")
    assert mgca.startswith("comparability mode") and "MGCA" in mgca and "MGCA" not in standard
    assert metric_description(task, "standard") == standard


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="task"):
        metric_description("retrieval")
