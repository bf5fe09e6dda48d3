"""COCO-style mean average precision over IoU thresholds 0.50:0.95, in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass
class ImageResult:
    """Detections (or ground truth, with scores omitted) of one image: xyxy boxes and class ids."""

    boxes: np.ndarray
    class_id: np.ndarray
    scores: np.ndarray | None = None


@dataclass
class MapResult:
    """mAP50-95, mAP50 and the per-class AP50-95 (NaN for classes without ground truth)."""

    map50_95: float
    map50: float
    per_class: list[float] = field(default_factory=list)
    images: int = 0
    instances: int = 0

    def as_dict(self) -> dict:
        return {
            "map50_95": round(self.map50_95, 4),
            "map50": round(self.map50, 4),
            "images": self.images,
            "instances": self.instances,
        }


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _match(pred: ImageResult, truth: ImageResult, cls: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For one image and class: scores, true-positive flags [P, T] per IoU threshold, and the GT count."""
    p_mask = pred.class_id == cls
    t_boxes = truth.boxes[truth.class_id == cls]
    scores = pred.scores[p_mask]
    order = np.argsort(-scores, kind="stable")
    scores, p_boxes = scores[order], pred.boxes[p_mask][order]
    tp = np.zeros((len(scores), len(IOU_THRESHOLDS)), bool)
    if len(scores) and len(t_boxes):
        iou = box_iou(p_boxes, t_boxes)
        for t, threshold in enumerate(IOU_THRESHOLDS):
            taken = np.zeros(len(t_boxes), bool)
            for i in range(len(scores)):
                candidates = np.where(~taken & (iou[i] >= threshold), iou[i], -1.0)
                j = int(candidates.argmax())
                if candidates[j] >= 0:
                    taken[j] = True
                    tp[i, t] = True
    return scores, tp, len(t_boxes)


def _average_precision(tp: np.ndarray, scores: np.ndarray, n_truth: int) -> np.ndarray:
    """AP per IoU threshold with COCO's 101-point interpolated precision."""
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    cum_tp = np.cumsum(tp, 0)
    cum_fp = np.cumsum(~tp, 0)
    recall = cum_tp / max(n_truth, 1)
    precision = cum_tp / np.maximum(cum_tp + cum_fp, 1)
    points = np.linspace(0, 1, 101)
    ap = np.zeros(tp.shape[1])
    for t in range(tp.shape[1]):
        envelope = np.maximum.accumulate(precision[::-1, t])[::-1]
        idx = np.searchsorted(recall[:, t], points, side="left")
        ap[t] = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean()
    return ap


def mean_average_precision(
    predictions: Sequence[ImageResult], truths: Sequence[ImageResult], num_classes: int
) -> MapResult:
    """COCO-style mAP of `predictions` against `truths` (one entry per image, same order)."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} images")
    per_class = []
    ap50 = []
    instances = 0
    for cls in range(num_classes):
        all_scores, all_tp, n_truth = [], [], 0
        for pred, truth in zip(predictions, truths):
            scores, tp, n = _match(pred, truth, cls)
            all_scores.append(scores)
            all_tp.append(tp)
            n_truth += n
        instances += n_truth
        if n_truth == 0:
            per_class.append(float("nan"))
            continue
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        tp = np.concatenate(all_tp) if all_tp else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        ap = _average_precision(tp, scores, n_truth) if len(scores) else np.zeros(len(IOU_THRESHOLDS))
        per_class.append(float(ap.mean()))
        ap50.append(float(ap[0]))
    valid = [a for a in per_class if not np.isnan(a)]
    return MapResult(
        map50_95=float(np.mean(valid)) if valid else 0.0,
        map50=float(np.mean(ap50)) if ap50 else 0.0,
        per_class=per_class,
        images=len(truths),
        instances=instances,
    )
