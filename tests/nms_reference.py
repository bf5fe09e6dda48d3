"""The textbook greedy NMS, one kept box per iteration: the independent reference edgekit's NMS is tested against."""

import numpy as np


def one_at_a_time_nms(boxes, scores, iou, class_id=None):
    """The textbook greedy NMS, one kept box per iteration, as an independent reference."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        survivors = []
        for j in order:
            w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(w, 0) * max(h, 0)
            union = (
                (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
                + (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
                - inter
            )
            same = class_id is None or class_id[i] == class_id[j]
            if not (same and union > 0 and inter / union > iou):
                survivors.append(j)
        order = survivors
    return np.asarray(keep)


def textbook_keep(boxes, scores, iou, class_id=None, limit=None):
    keep = one_at_a_time_nms(np.asarray(boxes, np.float64), np.asarray(scores), iou, class_id)
    return keep if limit is None else keep[:limit]
