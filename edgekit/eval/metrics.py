"""COCO mAP (mAP50-95, mAP50, per-class AP) of detections against ground truth, computed by pycocotools.

edgekit only turns its per-image arrays into the COCO json structures and reads the accumulated
precision table; matching, interpolation and averaging are pycocotools' own (the COCO evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import require
from edgekit.logs import silenced


@dataclass
class ImageResult:
    """Detections (or ground truth, with scores omitted) of one image: xyxy boxes [N, 4] in pixels and
    class ids [N]."""

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


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)


def coco_documents(
    predictions: Sequence[ImageResult], truths: Sequence[ImageResult], num_classes: int
) -> tuple[dict, list[dict]]:
    """The COCO ground-truth document and the result list for these images (image ids 1..N, category id =
    class id + 1)."""
    images, annotations, results = [], [], []
    for i, (pred, truth) in enumerate(zip(predictions, truths), 1):
        images.append({"id": i})
        for box, cls in zip(_xywh(truth.boxes), np.asarray(truth.class_id).reshape(-1)):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": int(cls) + 1, "bbox": box.tolist(),
                 "area": float(box[2] * box[3]), "iscrowd": 0}
            )
        scores = np.ones(len(pred.class_id)) if pred.scores is None else np.asarray(pred.scores).reshape(-1)
        for box, cls, score in zip(_xywh(pred.boxes), np.asarray(pred.class_id).reshape(-1), scores):
            results.append({"image_id": i, "category_id": int(cls) + 1, "bbox": box.tolist(), "score": float(score)})
    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def mean_average_precision(
    predictions: Sequence[ImageResult], truths: Sequence[ImageResult], num_classes: int, max_det: int = 300
) -> MapResult:
    """COCO mAP of `predictions` against `truths` (one entry per image, same order), over every object
    size, at most `max_det` detections per image. Needs pycocotools (the ``convert`` extra).

    Raises ValueError when the two sequences differ in length.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} images")
    require("pycocotools", "convert")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_doc, results = coco_documents(predictions, truths, num_classes)
    counts = np.bincount([a["category_id"] - 1 for a in gt_doc["annotations"]], minlength=num_classes)
    instances = int(counts.sum())
    per_class = [float("nan") if counts[c] == 0 else 0.0 for c in range(num_classes)]
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
        precision = evaluation.eval["precision"][:, :, :, 0, 0]  # [IoU thresholds, recall points, classes]
        for c in range(num_classes):
            if counts[c]:
                p = precision[:, :, c]
                per_class[c] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
        ap50 = [float(precision[0, :, c][precision[0, :, c] > -1].mean()) for c in range(num_classes) if counts[c]]
    else:
        ap50 = [0.0 for c in range(num_classes) if counts[c]]
    valid = [a for a in per_class if not np.isnan(a)]
    return MapResult(
        map50_95=float(np.mean(valid)) if valid else 0.0,
        map50=float(np.mean(ap50)) if ap50 else 0.0,
        per_class=per_class,
        images=len(truths),
        instances=instances,
    )
