"""The detection engines: MONAI trainer/evaluator with a detection iteration, driving standard handlers."""

from __future__ import annotations

import math

import torch
from monai.data import DataLoader, MetaTensor
from monai.data.utils import no_collation
from monai.handlers import CheckpointSaver, EarlyStopHandler, IgniteMetricHandler, ValidationHandler

from mflag_monai.engines import DetectionEvaluator, DetectionTrainer, loss_terms
from mflag_monai.metrics import DetectionMAPMetric, ValidationLoss, detection_output_transform
from mflag_monai.networks import build_detector, build_retinanet


def items(count: int = 4) -> list[dict]:
    """Images with a bright square and its box (every other image negative), as the transforms produce them."""
    data = []
    for i in range(count):
        image = torch.full((3, 64, 64), -1.0)
        boxes = torch.zeros(0, 4)
        if i % 2 == 0:
            image[:, 10:30, 20:44] = 1.0  # rows 10..29, columns 20..43
            boxes = torch.tensor([[20.0, 10.0, 44.0, 30.0]])
        meta = {"filename_or_obj": f"img{i}.png", "spatial_shape": [64, 64]}
        data.append(
            {"image": MetaTensor(image, meta=meta), "boxes": boxes, "labels": torch.zeros(len(boxes), dtype=torch.long)}
        )
    return data


def test_train_validate_and_select_with_monai_handlers(tmp_path) -> None:
    torch.manual_seed(0)
    network = build_retinanet(depth=18, fpn_channels=16)
    detector = build_detector(network, image_size=64, score_thresh=0.05)
    loader = DataLoader(items(), batch_size=2, collate_fn=no_collation)
    evaluator = DetectionEvaluator(
        device="cpu",
        val_data_loader=loader,
        network=detector,
        key_val_metric={
            "val_map": IgniteMetricHandler(
                metric_fn=DetectionMAPMetric(), output_transform=detection_output_transform, save_details=False
            )
        },
        val_handlers=[
            CheckpointSaver(str(tmp_path), {"model": network}, save_key_metric=True, key_metric_filename="model.pt")
        ],
    )
    head = network.classification_head.cls_logits.weight.clone()
    encoder = {k: v.clone() for k, v in network.feature_extractor.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-3)
    trainer = DetectionTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=loader,
        network=detector,
        optimizer=optimizer,
        train_handlers=[ValidationHandler(validator=evaluator, interval=1, epoch_level=True)],
    )
    early_stop = EarlyStopHandler(patience=5, score_function=lambda e: e.state.metrics["val_map"], trainer=trainer)
    early_stop.attach(evaluator)
    trainer.run()

    terms = loss_terms(trainer.state.output)
    assert set(terms) == {"loss", "loss_cls", "loss_box"} and all(math.isfinite(v) for v in terms.values())
    assert terms["loss"] == torch.tensor(terms["loss_cls"] + terms["loss_box"]).item()
    assert not torch.equal(head, network.classification_head.cls_logits.weight)  # the head trained
    assert all(torch.equal(v, network.feature_extractor.encoder.state_dict()[k]) for k, v in encoder.items())
    assert trainer.state.epoch == 1 and 0.0 <= evaluator.state.metrics["val_map"] <= 1.0
    assert (tmp_path / "model.pt").is_file()

    rows = evaluator.state.output  # the last batch, one dict per image with its metadata
    assert len(rows) == 2 and {"image", "boxes", "labels", "pred_boxes", "pred_scores", "pred_labels"} <= set(rows[0])
    assert rows[0]["image"].meta["filename_or_obj"] == "img2.png" and rows[0]["pred_boxes"].shape[-1] == 4
    assert (rows[0]["pred_scores"] >= 0.05).all()


def test_evaluator_postprocessing_runs_per_image() -> None:
    seen = []

    def record(d: dict) -> dict:
        seen.append((d["image"].meta["filename_or_obj"], tuple(d["pred_boxes"].shape)))
        return {**d, "checked": True}

    detector = build_detector(build_retinanet(depth=18, fpn_channels=16), image_size=64)
    loader = DataLoader([{"image": i["image"]} for i in items(3)], batch_size=2, collate_fn=no_collation)
    evaluator = DetectionEvaluator(device="cpu", val_data_loader=loader, network=detector, postprocessing=record)
    evaluator.run()
    assert [name for name, _ in seen] == ["img0.png", "img1.png", "img2.png"]
    assert evaluator.state.output[0]["checked"]


def test_evaluator_validation_loss_is_the_training_loss_and_changes_nothing() -> None:
    """compute_loss: each image carries its batch's training loss (the trainer's weighting), the detector's weights,
    running statistics and mode stay as they were, and the random generator is where it was."""
    torch.manual_seed(0)
    network = build_retinanet(depth=18, fpn_channels=16, encoder_bn="batch_stats")
    detector = build_detector(network, image_size=64)
    data = items(4)
    loader = DataLoader(data, batch_size=4, collate_fn=no_collation)
    state = {k: v.clone() for k, v in detector.state_dict().items()}
    after = []
    for compute_loss in (False, True):  # the data loader draws a seed too: compare with a run without the loss
        metric = {"val_loss": ValidationLoss()} if compute_loss else None
        evaluator = DetectionEvaluator(
            device="cpu", val_data_loader=loader, network=detector, compute_loss=compute_loss, key_val_metric=metric
        )
        torch.manual_seed(1)  # the hard-negative sampler's draws
        evaluator.run()
        after.append(torch.get_rng_state())
    assert torch.equal(after[0], after[1])
    assert all(torch.equal(v, detector.state_dict()[k]) for k, v in state.items())  # running statistics kept
    assert {row["loss"] for row in evaluator.state.output} == {evaluator.state.metrics["val_loss"]}

    detector.train()
    torch.manual_seed(1)  # the same draws
    with torch.no_grad():
        losses = detector(
            torch.stack([d["image"].as_tensor() for d in data]),
            [{"boxes": d["boxes"], "labels": d["labels"]} for d in data],
        )
    expected = float(losses[detector.cls_key] + losses[detector.box_reg_key])
    assert (
        math.isfinite(expected) and abs(evaluator.state.metrics["val_loss"] - expected) < 1e-3 * expected
    )  # oneDNN round-off
