"""mflag_monai.handlers.skipped_images: the images lost to decoding errors, counted once per batch."""

from __future__ import annotations

from ignite.engine import Engine

from mflag_monai.handlers.skipped_images import SkippedImageCounter


def test_skipped_images_counter() -> None:
    batches = [{"skipped_images": 1}, {"skipped_images": 0}, {"skipped_images": 2}]
    engine = Engine(lambda e, b: None)
    counter = SkippedImageCounter()
    counter.attach(engine)
    engine.run(batches, max_epochs=2)
    assert engine.state.metrics["skipped_images"] == 6


def test_skipped_images_counter_on_list_batches() -> None:
    from mflag_monai.data import skip_none_list

    batches = [skip_none_list([{"image": 1}, None]), skip_none_list([None, None, {"image": 2}])]
    engine = Engine(lambda e, b: None)
    counter = SkippedImageCounter()
    counter.attach(engine)
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["skipped_images"] == 3 and [len(b) for b in batches] == [1, 1]
