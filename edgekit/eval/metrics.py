"""COCO mAP (mAP50-95, mAP50, per-class AP) of detections against ground truth, computed by pycocotools.

Predictions and ground truth are :class:`~edgekit.detections.Detections`, one per image, in the same pixel
frame (a ground truth's confidence is not read). edgekit only turns them into the COCO json structures and
reads the accumulated precision table; matching, interpolation and averaging are pycocotools' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.detections import Detections
from edgekit.errors import require
from edgekit.eval.settings import VAL
from edgekit.logs import silenced


@dataclass
class MapResult:
    """COCO figures of one evaluation.

    ``per_class`` AP50-95 and ``per_class_ap50`` (NaN for classes without ground truth); ``precision`` and
    ``recall`` (mean over classes, IoU 0.5) at ``best_conf``, the confidence where their F1 peaks, as
    Ultralytics reports them; ``pr_curve`` [C, 101] precision at recall 0, 0.01 .. 1 (IoU 0.5, COCO's
    interpolation), the curve a PR plot draws.
    """

    map50_95: float
    map50: float
    per_class: list[float] = field(default_factory=list)
    images: int = 0
    instances: int = 0
    per_class_ap50: list[float] = field(default_factory=list)
    precision: float = 0.0
    recall: float = 0.0
    best_conf: float = 0.0
    pr_curve: np.ndarray | None = None
    class_instances: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "map50_95": round(self.map50_95, 4),
            "map50": round(self.map50, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "images": self.images,
            "instances": self.instances,
        }


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)


def coco_documents(
    predictions: Sequence[Detections], truths: Sequence[Detections], num_classes: int
) -> tuple[dict, list[dict]]:
    """The COCO ground-truth document and the result list for these images (image ids 1..N, category id =
    class id + 1)."""
    images, annotations, results = [], [], []
    for i, (pred, truth) in enumerate(zip(predictions, truths), 1):
        images.append({"id": i})
        for box, cls in zip(_xywh(truth.xyxy), truth.class_id):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": int(cls) + 1, "bbox": box.tolist(),
                 "area": float(box[2] * box[3]), "iscrowd": 0}
            )
        for box, cls, score in zip(_xywh(pred.xyxy), pred.class_id, pred.confidence):
            results.append({"image_id": i, "category_id": int(cls) + 1, "bbox": box.tolist(), "score": float(score)})
    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def mean_average_precision(
    predictions: Sequence[Detections], truths: Sequence[Detections], num_classes: int, max_det: int = VAL.max_det
) -> MapResult:
    """COCO mAP of `predictions` against `truths` (one entry per image, same order), over every object
    size, at most `max_det` detections per image; precision, recall and the PR curve from the same
    matching (see MapResult). Needs pycocotools (the ``convert`` or ``val`` extra).

    Raises ValueError when the two sequences differ in length.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} images")
    require("pycocotools", "val")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_doc, results = coco_documents(predictions, truths, num_classes)
    counts = np.bincount([a["category_id"] - 1 for a in gt_doc["annotations"]], minlength=num_classes)
    instances = int(counts.sum())
    per_class = [float("nan") if counts[c] == 0 else 0.0 for c in range(num_classes)]
    per_class_ap50 = list(per_class)
    curve = np.zeros((num_classes, 101))
    precision = recall = best_conf = 0.0
    if instances and results:
        with silenced(stderr=False):
            gt = COCO()
            gt.dataset = gt_doc
            gt.createIndex()
            dt = gt.loadRes(results)
            evaluation = COCOeval(gt, dt, "bbox")
            evaluation.params.maxDets = [max_det]
            evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
            evaluation.params.catIds = [c + 1 for c in range(num_classes)]
            evaluation.evaluate()
            evaluation.accumulate()
        table = evaluation.eval["precision"][:, :, :, 0, 0]  # [IoU thresholds, recall points, classes]
        for c in range(num_classes):
            if counts[c]:
                p = table[:, :, c]
                per_class[c] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
                p50 = table[0, :, c]
                per_class_ap50[c] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0
                curve[c] = np.clip(p50, 0, None)
        precision, recall, best_conf = _best_f1(evaluation, counts, max_det)
    valid = [a for a in per_class if not np.isnan(a)]
    valid50 = [a for a in per_class_ap50 if not np.isnan(a)]
    return MapResult(
        map50_95=float(np.mean(valid)) if valid else 0.0,
        map50=float(np.mean(valid50)) if valid50 else 0.0,
        per_class=per_class,
        images=len(truths),
        instances=instances,
        per_class_ap50=per_class_ap50,
        precision=precision,
        recall=recall,
        best_conf=best_conf,
        pr_curve=curve,
        class_instances=counts.tolist(),
    )


def _best_f1(evaluation, counts: np.ndarray, max_det: int) -> tuple[float, float, float]:
    """Mean precision and recall over classes (IoU 0.5) at the confidence where the mean F1 peaks.

    Reads pycocotools' own per-image matches (``evalImgs``): for each class its detections sorted by score,
    true positives where matched at IoU 0.5; precision and recall as functions of confidence on a 0..1
    grid, as Ultralytics' ap_per_class derives its P and R.
    """
    grid = np.linspace(0, 1, 1000)
    p_grid, r_grid = [], []
    by_class: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for entry in evaluation.evalImgs:
        if entry is None:
            continue
        scores = np.asarray(entry["dtScores"])[:max_det]
        matched = np.asarray(entry["dtMatches"])[0, :max_det] > 0
        ignored = np.asarray(entry["dtIgnore"])[0, :max_det].astype(bool)
        by_class.setdefault(entry["category_id"] - 1, []).append((scores[~ignored], matched[~ignored]))
    for c, count in enumerate(counts):
        if not count:
            continue
        parts = by_class.get(c, [])
        scores = np.concatenate([s for s, _ in parts]) if parts else np.zeros(0)
        tp = np.concatenate([m for _, m in parts]) if parts else np.zeros(0, bool)
        if not len(scores):
            p_grid.append(np.zeros_like(grid))
            r_grid.append(np.zeros_like(grid))
            continue
        order = np.argsort(-scores, kind="mergesort")
        scores, tp = scores[order], tp[order]
        tps = np.cumsum(tp)
        fps = np.cumsum(~tp)
        rec = tps / count
        prec = tps / (tps + fps)
        # as functions of confidence (scores decrease along the arrays, np.interp needs increasing x)
        r_grid.append(np.interp(-grid, -scores, rec, left=0))
        p_grid.append(np.interp(-grid, -scores, prec, left=1))
    p_mean, r_mean = np.mean(p_grid, 0), np.mean(r_grid, 0)
    f1 = 2 * p_mean * r_mean / (p_mean + r_mean + 1e-16)
    best = int(f1.argmax())
    return float(p_mean[best]), float(r_mean[best]), float(grid[best])
