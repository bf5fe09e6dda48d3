"""Train the family fixtures (yolov9-t with its PGI branch, damoyolo-t, yolo26n) on procedural scenes, on CPU.

    python -c "from edgekit.eval.procedural import write_dataset as w; w('scenes', {'train': 4000, 'val': 200})"
    python scripts/train_families.py yolo26n --data scenes/data.yaml --minutes 35 --out yolo26n.pt

The models are edgekit's own definitions of each family in their training form; the weights are saved in
the family's native checkpoint layout (the official YOLOv9 pickled ``model`` + ``ema`` in fp16, DAMO-YOLO's
``{model: state_dict}`` .pth, Ultralytics' stripped pickle), so the fixtures go through the real loaders.

One loss serves all three, in the spirit of the families' own (not any paper's exact recipe):
- assignment: the task-aligned assigner of TOOD (Feng et al., 2021) as YOLOv8/v9 use it, alignment
  s^0.5 * IoU^6 over anchors whose centre lies inside the box, top-10 per object (top-1 for YOLO26's
  one-to-one branch, which is what makes it NMS-free), overlaps resolved by the higher IoU;
- classification: BCE against IoU-scaled alignment targets; boxes: CIoU; DFL (Li et al., GFL, 2020) on
  the heads that predict distance distributions (YOLOv9's 16 bins, DAMO-YOLO's 17), none on YOLO26's
  direct distances; gains 7.5 / 0.5 / 1.5 as in YOLOv8.
- YOLOv9 trains its auxiliary (PGI) branch with weight 0.25 beside the main one, as train_dual.py does;
  YOLO26 trains one-to-many and one-to-one on detached features, the one-to-many weight decaying from 0.8
  to 0.1 (Ultralytics' E2ELoss); DAMO-YOLO's ZeroHead takes 0..255 input and anchor points without the
  half-cell offset, as its reference does.

The learning-rate schedule runs on wall-clock time (``--minutes``), so a run ends on time on any machine.
Training images go through the runtime's own letterbox as the converter declares it for the family.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the native-layout checkpoint writers live with the tests

from edgekit.eval.datasets import load_dataset  # noqa: E402
from edgekit.eval.metrics import MapResult, mean_average_precision  # noqa: E402
from edgekit.eval.settings import VAL  # noqa: E402
from edgekit.meta import InputSpec, Letterbox  # noqa: E402
from edgekit.runtimes.decode import decode_nms, decode_topk, in_source_pixels  # noqa: E402
from edgekit.runtimes.preprocess import letterbox, to_tensor  # noqa: E402

from checkpoints import write_damo_checkpoint, write_ultralytics_checkpoint, write_yolov9_checkpoint  # noqa: E402

ARCHS = ("yolov9-t", "damoyolo-t", "yolo26n")


@dataclass
class Branch:
    """One prediction branch, flattened over its levels: A anchors, C classes."""

    logits: torch.Tensor  # [B, A, C] class logits
    dist: torch.Tensor  # [B, A, 4] left, top, right, bottom distances in input pixels
    bins: torch.Tensor | None  # [B, A, 4, R] distance-distribution logits (units of stride), or None
    points: torch.Tensor  # [A, 2] anchor points in input pixels
    strides: torch.Tensor  # [A]
    topk: int
    weight: float


def _anchors(shapes, strides, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    points, per_anchor = [], []
    for (h, w), s in zip(shapes, strides):
        gy, gx = torch.meshgrid(torch.arange(h) + offset, torch.arange(w) + offset, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2) * s)
        per_anchor.append(torch.full((h * w,), float(s)))
    return torch.cat(points).float(), torch.cat(per_anchor)


def _branch(box_maps, cls_maps, strides, bins: int, offset: float, topk: int, weight: float) -> Branch:
    b = box_maps[0].shape[0]
    shapes = [m.shape[2:] for m in box_maps]
    points, per_anchor = _anchors(shapes, strides, offset)
    logits = torch.cat([m.flatten(2) for m in cls_maps], 2).transpose(1, 2)
    raw = torch.cat([m.flatten(2) for m in box_maps], 2)  # [B, 4*R, A]
    if bins > 1:
        dist_bins = raw.view(b, 4, bins, -1).permute(0, 3, 1, 2)
        project = torch.arange(bins, dtype=raw.dtype)
        dist = (dist_bins.softmax(-1) * project).sum(-1)
    else:
        dist_bins, dist = None, raw.transpose(1, 2)
    return Branch(logits, dist * per_anchor[None, :, None], dist_bins, points, per_anchor, topk, weight)


class Family:
    """How one family is built, fed, trained, evaluated and saved."""

    arch: str
    input_scale = 1.0
    letterbox = Letterbox()

    def __init__(self, nc: int):
        self.model = self.build(nc)
        with torch.no_grad():
            self.init_biases()

    def init_biases(self) -> None:
        """Class-logit biases at a small prior, box biases at one cell, as the families' trainers start."""
        raise NotImplementedError

    def build(self, nc: int) -> torch.nn.Module:
        raise NotImplementedError

    def branches(self, x: torch.Tensor, progress: float) -> list[Branch]:
        raise NotImplementedError

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, bool]:
        """Eval-mode boxes [A, 4] (normalized xyxy) and scores [A, C] of one image, and whether it is NMS-free."""
        raise NotImplementedError

    def save(self, model: torch.nn.Module, path: Path, names: list[str], imgsz: int) -> None:
        """Write the checkpoint as the family's trainer does (recording the training size where it records one)."""
        raise NotImplementedError


def yolo_biases(head, *branches) -> None:
    """Box biases at one cell and class biases at a small prior per level, as YOLOv5..v9's bias_init does."""
    for boxes, classes in branches:
        for box, cls, stride in zip(boxes, classes, head.stride.tolist()):
            box[-1].bias.fill_(1.0)
            cls[-1].bias.fill_(math.log(5 / head.nc / (640 / stride) ** 2))


def export_predict(model, x) -> tuple[np.ndarray, np.ndarray, bool]:
    """Boxes and scores of a head with an ``export`` switch (the contract's normalized outputs)."""
    model.head.export = True
    try:
        boxes, scores = model(x)
    finally:
        model.head.export = False
    return boxes[0].numpy(), scores[0].numpy(), False


class YOLOv9Family(Family):
    arch = "yolov9-t"

    def build(self, nc):
        from edgekit.models import yolov9

        return yolov9.build(self.arch, nc)

    def init_biases(self):
        head = self.model.head
        yolo_biases(head, (head.cv2, head.cv3), (head.cv4, head.cv5))

    def branches(self, x, progress):
        head = self.model.head
        aux, main = self.model(x)
        split = (4 * head.reg_max, head.nc)
        out = []
        for maps, weight in ((main, 1.0), (aux, 0.25)):
            box, cls = zip(*(m.split(split, 1) for m in maps))
            out.append(_branch(box, cls, head.stride.tolist(), head.reg_max, 0.5, 10, weight))
        return out

    def predict(self, model, x):
        return export_predict(model, x)

    def save(self, model, path, names, imgsz):
        model = copy.deepcopy(model).eval()
        model.names = list(names)
        write_yolov9_checkpoint(model, path, imgsz=imgsz)


class YOLO26Family(Family):
    arch = "yolo26n"

    def build(self, nc):
        from edgekit.models import ultralytics

        return ultralytics.build(self.arch, nc)

    def init_biases(self):
        head = self.model.head
        yolo_biases(head, (head.cv2, head.cv3), (head.one2one_cv2, head.one2one_cv3))

    def branches(self, x, progress):
        head = self.model.head
        head.forward = lambda feats: feats  # run the graph up to the head's inputs
        try:
            feats = self.model(x)
        finally:
            del head.forward
        strides = head.stride.tolist()
        o2m = max(1 - progress, 0) * (0.8 - 0.1) + 0.1
        many = _branch(
            [c(f) for c, f in zip(head.cv2, feats)], [c(f) for c, f in zip(head.cv3, feats)],
            strides, head.reg_max, 0.5, 10, o2m,
        )
        detached = [f.detach() for f in feats]
        one = _branch(
            [c(f) for c, f in zip(head.one2one_cv2, detached)], [c(f) for c, f in zip(head.one2one_cv3, detached)],
            strides, head.reg_max, 0.5, 1, 1 - o2m,
        )
        return [many, one]

    def predict(self, model, x):
        model.head.mode = "o2o"
        try:
            boxes, scores = model(x)
        finally:
            model.head.mode = "reference"
        return boxes[0].numpy(), scores[0].numpy(), True

    def save(self, model, path, names, imgsz):
        model = copy.deepcopy(model).eval()
        model.names = dict(enumerate(names))
        write_ultralytics_checkpoint(model, path, imgsz=imgsz)


class DAMOFamily(Family):
    arch = "damoyolo-t"
    input_scale = 255.0
    letterbox = Letterbox(align="topleft", pad_value=0, keep_ratio=False, rounding="floor")

    def build(self, nc):
        from edgekit.models import damo

        return damo.build(self.arch, nc)

    def init_biases(self):
        for conv in self.model.head.gfl_cls:
            conv.bias.fill_(-math.log((1 - 0.01) / 0.01))  # prior probability 0.01, as GFL's head

    def branches(self, x, progress):
        head = self.model.head
        feats = self.model.neck(self.model.backbone(x))
        box = [scale(conv(f)) for f, conv, scale in zip(feats, head.gfl_reg, head.scales)]
        cls = [conv(f) for f, conv in zip(feats, head.gfl_cls)]
        return [_branch(box, cls, head.strides, head.reg_max + 1, 0.0, 10, 1.0)]

    def predict(self, model, x):
        return export_predict(model, x)

    def save(self, model, path, names, imgsz):
        write_damo_checkpoint(copy.deepcopy(model).half().eval(), path)  # fp16, as the fixtures are committed


FAMILIES = {cls.arch: cls for cls in (YOLOv9Family, YOLO26Family, DAMOFamily)}


# ---- assignment and loss -------------------------------------------------------------------------------


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` [N, 4] with every box in `b` [M, 4] (xyxy), [N, M]."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


def ciou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Complete IoU (Zheng et al., 2020) of matched xyxy boxes [N, 4], [N]."""
    eps = 1e-7
    w1, h1 = pred[:, 2] - pred[:, 0], (pred[:, 3] - pred[:, 1]).clamp(min=eps)
    w2, h2 = target[:, 2] - target[:, 0], (target[:, 3] - target[:, 1]).clamp(min=eps)
    inter = (torch.min(pred[:, 2], target[:, 2]) - torch.max(pred[:, 0], target[:, 0])).clamp(min=0) * (
        torch.min(pred[:, 3], target[:, 3]) - torch.max(pred[:, 1], target[:, 1])
    ).clamp(min=0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(pred[:, 2], target[:, 2]) - torch.min(pred[:, 0], target[:, 0])
    ch = torch.max(pred[:, 3], target[:, 3]) - torch.min(pred[:, 1], target[:, 1])
    c2 = cw**2 + ch**2 + eps
    rho2 = ((pred[:, 0] + pred[:, 2] - target[:, 0] - target[:, 2]) ** 2 + (
        pred[:, 1] + pred[:, 3] - target[:, 1] - target[:, 3]
    ) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def assign(
    scores: torch.Tensor, boxes: torch.Tensor, points: torch.Tensor, gt: torch.Tensor, labels: torch.Tensor, topk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Task-aligned assignment for one image: foreground mask [A], matched box [A, 4], class targets [A, C].

    `scores` [A, C] probabilities and `boxes` [A, 4] predicted xyxy (both detached); `gt` [G, 4], `labels` [G].
    """
    a, c = scores.shape
    if not len(gt):
        return torch.zeros(a, dtype=torch.bool), torch.zeros(a, 4), torch.zeros(a, c)
    inside = (points[None, :, 0] > gt[:, None, 0]) & (points[None, :, 0] < gt[:, None, 2])
    inside &= (points[None, :, 1] > gt[:, None, 1]) & (points[None, :, 1] < gt[:, None, 3])
    centers = (gt[:, :2] + gt[:, 2:]) / 2
    nearest = ((points[None] - centers[:, None]) ** 2).sum(-1).argmin(1)  # objects smaller than a cell
    inside[torch.arange(len(gt)), nearest] = True
    ious = box_iou(gt, boxes).clamp(min=0)
    align = scores[:, labels].T.pow(0.5) * ious.pow(6.0) * inside
    top = align.topk(min(topk, a), dim=1).indices
    chosen = torch.zeros_like(inside)
    chosen.scatter_(1, top, True)
    chosen &= inside
    many = chosen.sum(0) > 1
    if many.any():
        best = (ious * chosen).argmax(0)
        chosen[:, many] = False
        chosen[best[many], many.nonzero().squeeze(1)] = True
    fg = chosen.any(0)
    index = chosen.float().argmax(0)
    align_pos = align * chosen
    norm = (align_pos * (ious * chosen).amax(1, keepdim=True) / (align_pos.amax(1, keepdim=True) + 1e-9)).amax(0)
    targets = torch.zeros(a, c)
    targets[fg, labels[index[fg]]] = norm[fg]
    return fg, gt[index], targets


def dfl_loss(bins: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss of [N, 4, R] logits against distances [N, 4] in bins, [N]."""
    r = bins.shape[-1]
    target = target.clamp(0, r - 1 - 0.01)
    left = target.long()
    wl = left + 1 - target
    flat = bins.reshape(-1, r)
    ce_l = F.cross_entropy(flat, left.view(-1), reduction="none").view(left.shape)
    ce_r = F.cross_entropy(flat, (left + 1).view(-1), reduction="none").view(left.shape)
    return (ce_l * wl + ce_r * (1 - wl)).mean(-1)


def branch_loss(branch: Branch, gts: list[torch.Tensor], labels: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
    pred_boxes = torch.cat((branch.points[None] - branch.dist[..., :2], branch.points[None] + branch.dist[..., 2:]), -1)
    probs = branch.logits.detach().sigmoid()
    fgs, boxes, targets = [], [], []
    for i, (gt, lab) in enumerate(zip(gts, labels)):
        fg, box, target = assign(probs[i], pred_boxes[i].detach(), branch.points, gt, lab, branch.topk)
        fgs.append(fg)
        boxes.append(box)
        targets.append(target)
    fg, boxes, targets = torch.stack(fgs), torch.stack(boxes), torch.stack(targets)
    total = targets.sum().clamp(min=1)
    cls = F.binary_cross_entropy_with_logits(branch.logits, targets, reduction="sum") / total
    box = dfl = branch.logits.sum() * 0
    if fg.any():
        weight = targets.sum(-1)[fg]
        box = ((1 - ciou(pred_boxes[fg], boxes[fg])) * weight).sum() / total
        if branch.bins is not None:
            stride = branch.strides[None].expand(fg.shape)[fg][:, None]
            points = branch.points[None].expand(fg.shape[0], -1, -1)[fg]
            ltrb = torch.cat((points - boxes[fg][:, :2], boxes[fg][:, 2:] - points), -1) / stride
            dfl = (dfl_loss(branch.bins[fg], ltrb) * weight).sum() / total
    loss = 7.5 * box + 0.5 * cls + 1.5 * dfl
    parts = {"box": box.item(), "cls": cls.item(), "dfl": dfl.item()}
    return loss * branch.weight, parts


# ---- data ---------------------------------------------------------------------------------------------


class Loader:
    """Letterboxed training batches with horizontal / vertical flips, from images held in memory."""

    def __init__(self, family: Family, images: list[np.ndarray], boxes: list[np.ndarray], labels, imgsz: int):
        self.family, self.images, self.boxes, self.labels, self.imgsz = family, images, boxes, labels, imgsz
        self.spec = InputSpec(letterbox=family.letterbox)

    def batch(self, rng: np.random.Generator, size: int):
        tensors, gts, labs = [], [], []
        lb = self.spec.letterbox
        for i in rng.integers(0, len(self.images), size):
            image, box = self.images[i], self.boxes[i].copy()
            h, w = image.shape[:2]
            if rng.uniform() < 0.5:
                image, box[:, [0, 2]] = image[:, ::-1], w - box[:, [2, 0]]
            if rng.uniform() < 0.5:
                image, box[:, [1, 3]] = image[::-1], h - box[:, [3, 1]]
            size = (self.imgsz, self.imgsz)
            image = np.ascontiguousarray(image)
            boxed, info = letterbox(image, size, lb.align, lb.pad_value, lb.keep_ratio, lb.rounding)
            tensors.append(torch.from_numpy(to_tensor(boxed, self.spec)))
            sx = info.input_size[1] / w if not lb.keep_ratio else info.scale
            sy = info.input_size[0] / h if not lb.keep_ratio else info.scale
            left, top = info.pad
            gts.append(torch.from_numpy((box * [sx, sy, sx, sy] + [left, top, left, top]).astype(np.float32)))
            labs.append(torch.from_numpy(self.labels[i]))
        return torch.cat(tensors) * self.family.input_scale, gts, labs


def evaluate(family: Family, model: torch.nn.Module, data, imgsz: int, limit: int | None = None) -> MapResult:
    """mAP50-95 of `model` on a split, decoded as the runtime decodes (conf 0.001, 300 detections)."""
    spec = InputSpec(letterbox=family.letterbox)
    lb = spec.letterbox
    model.eval()
    preds, truths = [], []
    with torch.no_grad():
        for item in data.items[:limit]:
            image = cv2.imread(str(item.image))
            boxed, info = letterbox(image, (imgsz, imgsz), lb.align, lb.pad_value, lb.keep_ratio, lb.rounding)
            x = torch.from_numpy(to_tensor(boxed, spec)) * family.input_scale
            boxes, scores, nms_free = family.predict(model, x)
            if nms_free:
                found = decode_topk(boxes, scores, conf=VAL.conf, max_det=VAL.max_det)
            else:
                found = decode_nms(boxes, scores, VAL.conf, VAL.iou, VAL.max_det, multi_label=VAL.multi_label)
            preds.append(in_source_pixels(found, info, True))
            truths.append(item.truth(*image.shape[:2]))
    return mean_average_precision(preds, truths, len(data.names))


class EMA:
    """Exponential moving average of the weights (and buffers), decay ramped up over the first updates."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999, tau: float = 300):
        self.ema = copy.deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, 0
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        with torch.no_grad():
            live = model.state_dict()
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(live[k].detach(), alpha=1 - d)
                else:
                    v.copy_(live[k])


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train_set = load_dataset(args.data, "train")
    val_set = load_dataset(args.data, "val")
    family = FAMILIES[args.arch](len(train_set.names))
    model = family.model.train()
    images = [cv2.imread(str(item.image)) for item in train_set.items]
    boxes = [item.pixel_boxes(*image.shape[:2]) for item, image in zip(train_set.items, images)]
    loader = Loader(family, images, boxes, [item.labels for item in train_set.items], args.imgsz)
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    ema = EMA(model)
    budget = args.minutes * 60
    start = time.perf_counter()
    step = 0
    print(f"{args.arch}: {len(images)} training images, {len(val_set.items)} val, {args.minutes} min", flush=True)
    while True:
        elapsed = time.perf_counter() - start
        progress = elapsed / budget
        if progress >= 1:
            break
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, gts, labels = loader.batch(rng, args.batch)
        losses, parts = [], {}
        for branch in family.branches(x, progress):
            loss, part = branch_loss(branch, gts, labels)
            losses.append(loss)
            parts = parts or part
        loss = sum(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        ema.update(model)
        if step % args.log_every == 0:
            print(
                f"step {step:5d} {elapsed / 60:5.1f} min  loss {loss.item():.3f} "
                f"(box {parts['box']:.3f} cls {parts['cls']:.3f} dfl {parts['dfl']:.3f})  lr {lr:.2e}",
                flush=True,
            )
        if args.eval_every and step and step % args.eval_every == 0:
            result = evaluate(family, ema.ema, val_set, args.imgsz, limit=100)
            print(f"  val(100) mAP50-95 {result.map50_95:.3f} mAP50 {result.map50:.3f}", flush=True)
            model.train()
        step += 1
    result = evaluate(family, ema.ema, val_set, args.imgsz)
    print(
        f"{args.arch}: {step} steps in {(time.perf_counter() - start) / 60:.1f} min; val mAP50-95 "
        f"{result.map50_95:.4f} mAP50 {result.map50:.4f} on {result.images} images",
        flush=True,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ema.ema.state_dict(), args.out.with_suffix(".state_dict.pt"))  # plain weights, kept for re-saving
    family.save(ema.ema, args.out, list(train_set.names), args.imgsz)
    print(f"wrote {args.out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=ARCHS)
    parser.add_argument("--data", required=True, help="YOLO data.yaml with train and val splits")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (the family's native layout)")
    parser.add_argument("--minutes", type=float, default=40.0, help="wall-clock training budget")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.025)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--eval-every", type=int, default=0, help="steps between quick val checks (0: none)")
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
