"""Train the demo ShapesNet on freshly rendered shapes images (CPU, a few minutes to an hour).

Images go through the runtime's own letterbox and tensor conversion, so training sees exactly what
the deployed model will. Assignment is FCOS-like (cells near a box's centre and inside it are
positives); losses are sigmoid focal loss for classes and GIoU for boxes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from edgekit.detections import Detections
from edgekit.eval.metrics import MapResult, mean_average_precision
from edgekit.eval.synthetic import CLASSES, render, sample_size
from edgekit.meta import InputSpec
from edgekit.models.shapesnet import ShapesNet, anchor_centers
from edgekit.runtimes.decode import decode_nms, in_source_pixels
from edgekit.runtimes.preprocess import preprocess


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, H, W] float 0..1 RGB
    boxes: list[torch.Tensor]  # per image [N, 4] network pixels
    labels: list[torch.Tensor]  # per image [N]


def make_batch(rng: np.random.Generator, size: int, imgsz: int) -> Batch:
    """Render `size` images of random sizes and letterbox them as the runtime does."""
    images, boxes, labels = [], [], []
    spec = InputSpec()
    for _ in range(size):
        h, w = sample_size(rng, 160, 640)
        sample = render(rng, h, w)
        tensor, info = preprocess(sample.image, spec, (imgsz, imgsz))
        images.append(torch.from_numpy(tensor))
        left, top = info.pad
        boxes.append(torch.from_numpy(sample.boxes * info.scale + np.array([left, top, left, top], np.float32)))
        labels.append(torch.from_numpy(sample.labels))
    return Batch(torch.cat(images), boxes, labels)


def assign(centers: torch.Tensor, boxes: torch.Tensor, stride: int, radius: float = 2.5) -> torch.Tensor:
    """Index of the ground-truth box each cell predicts (-1 for background).

    A cell is positive for a box if its centre lies inside the box and within `radius` strides of the
    box centre; ties go to the smaller box. Every box gets at least the cell nearest its centre.
    """
    target = torch.full((len(centers),), -1, dtype=torch.long)
    if not len(boxes):
        return target
    cx, cy = centers[:, 0:1], centers[:, 1:2]
    inside = (cx > boxes[:, 0]) & (cx < boxes[:, 2]) & (cy > boxes[:, 1]) & (cy < boxes[:, 3])
    bc = (boxes[:, :2] + boxes[:, 2:]) / 2
    near = ((cx - bc[:, 0]).abs() < radius * stride) & ((cy - bc[:, 1]).abs() < radius * stride)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).expand(len(centers), -1)
    cost = torch.where(inside & near, area, torch.full_like(area, float("inf")))
    best_cost, best = cost.min(1)
    target[best_cost.isfinite()] = best[best_cost.isfinite()]
    nearest = ((centers[:, None, :] - bc[None]) ** 2).sum(-1).argmin(0)
    target[nearest] = torch.arange(len(boxes))
    return target


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - generalized IoU of matched xyxy boxes."""
    w = (torch.min(pred[:, 2], target[:, 2]) - torch.max(pred[:, 0], target[:, 0])).clamp(min=0)
    h = (torch.min(pred[:, 3], target[:, 3]) - torch.max(pred[:, 1], target[:, 1])).clamp(min=0)
    inter = w * h
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_p + area_t - inter + 1e-7
    cw = torch.max(pred[:, 2], target[:, 2]) - torch.min(pred[:, 0], target[:, 0])
    ch = torch.max(pred[:, 3], target[:, 3]) - torch.min(pred[:, 1], target[:, 1])
    hull = cw * ch + 1e-7
    return 1 - (inter / union - (hull - union) / hull)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = logits.sigmoid()
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    weight = (alpha * target + (1 - alpha) * (1 - target)) * (1 - p_t) ** gamma
    return (weight * ce).sum()


def loss_fn(model: ShapesNet, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    logits, boxes = model(batch.images)
    h, w = batch.images.shape[2] // model.stride, batch.images.shape[3] // model.stride
    centers = anchor_centers(h, w, model.stride)
    cls_target = torch.zeros_like(logits)
    box_losses, positives = [], 0
    for i, (gt, lab) in enumerate(zip(batch.boxes, batch.labels)):
        match = assign(centers, gt, model.stride)
        pos = match >= 0
        positives += int(pos.sum())
        if pos.any():
            cls_target[i, pos, lab[match[pos]]] = 1.0
            box_losses.append(giou_loss(boxes[i, pos], gt[match[pos]]))
    norm = max(positives, 1)
    cls_loss = focal_loss(logits, cls_target) / norm
    box_loss = torch.cat(box_losses).sum() / norm if box_losses else boxes.sum() * 0
    total = cls_loss + 2.0 * box_loss
    return total, {"cls": cls_loss.item(), "box": box_loss.item()}


def evaluate(model: ShapesNet, images: int = 200, imgsz: int = 320, seed: int = 12345) -> MapResult:
    """mAP of the model on freshly rendered held-out images, decoded as the runtime decodes."""
    rng = np.random.default_rng(seed)
    spec = InputSpec()
    was_export, was_training = model.export, model.training
    model.export = True
    model.eval()
    preds, truths = [], []
    with torch.no_grad():
        for _ in range(images):
            sample = render(rng, *sample_size(rng))
            tensor, info = preprocess(sample.image, spec, (imgsz, imgsz))
            boxes, scores = model(torch.from_numpy(tensor))
            found = decode_nms(boxes[0].numpy(), scores[0].numpy(), conf=0.001, iou=0.6, max_det=100)
            preds.append(in_source_pixels(found, info, True))
            truths.append(Detections(sample.boxes, np.ones(len(sample.labels)), sample.labels))
    model.export = was_export
    model.train(was_training)
    return mean_average_precision(preds, truths, len(CLASSES))


def train(
    iterations: int = 3000,
    batch_size: int = 16,
    imgsz: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    log_every: int = 100,
) -> ShapesNet:
    """Train a ShapesNet from scratch; prints the losses as it goes."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ShapesNet(len(CLASSES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    warmup = min(200, iterations // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, iterations - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    start = time.perf_counter()
    for step in range(iterations):
        batch = make_batch(rng, batch_size, imgsz)
        loss, parts = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        if step % log_every == 0 or step == iterations - 1:
            elapsed = time.perf_counter() - start
            print(
                f"step {step:5d}/{iterations}  loss {loss.item():.3f} (cls {parts['cls']:.3f}, box {parts['box']:.3f})"
                f"  lr {scheduler.get_last_lr()[0]:.2e}  {elapsed:.0f}s",
                flush=True,
            )
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    """Train, report mAP on held-out renders, and save the weights (a plain state_dict)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--imgsz", type=int, default=256, help="training input size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="shapes.pt", help="where to write the state_dict")
    parser.add_argument("--export", help="also convert to this ONNX artifact (fused, verified, 320x320)")
    args = parser.parse_args(argv)
    model = train(args.iterations, args.batch, args.imgsz, seed=args.seed)
    torch.save(model.state_dict(), args.out)
    result = evaluate(model)
    print(f"held-out mAP50-95 {result.map50_95:.3f}, mAP50 {result.map50:.3f} on {result.images} images")
    if args.export:
        import shutil
        import tempfile
        from pathlib import Path

        from edgekit.converters.convert import convert_many

        with tempfile.TemporaryDirectory() as tmp:
            (exported,) = convert_many(args.out, "onnx", "fp32", 320, Path(tmp))
            if not exported.ok:
                raise SystemExit(f"export failed: {exported.error}")
            shutil.move(str(exported.path), args.export)
        print(f"wrote {args.export} (verified: {exported.verification.summary()})")


if __name__ == "__main__":
    main()
