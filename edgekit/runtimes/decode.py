"""Raw network outputs to final boxes, in numpy: class-aware NMS, NMS-free top-k, threshold-only.

All functions work on one image. Boxes stay in the network's coordinates (normalized or input pixels);
:func:`to_source` maps them back through the letterbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgekit.detections import Detections
from edgekit.meta import ModelMeta
from edgekit.runtimes.preprocess import LetterboxInfo


@dataclass
class Decoded:
    """Boxes (x1,y1,x2,y2 in network coordinates), scores and class ids of one image."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_id: np.ndarray

    def take(self, index: np.ndarray) -> Decoded:
        return Decoded(self.xyxy[index], self.scores[index], self.class_id[index])


def _empty() -> Decoded:
    return Decoded(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


_PAIR_BUDGET = 2_000_000  # overlapping-pair candidates beyond which NMS falls back to rounds over kept boxes
_PAIRS_PER_BOX = 64  # ... or beyond this many per box (big boxes everywhere): rounds are cheaper there
_ROUNDS_FIRST = 8  # rounds over kept boxes before the pair graph settles the rest


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou: float,
    class_id: np.ndarray | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """Exact greedy NMS; with `class_id`, boxes only suppress boxes of their own class.

    `boxes` [N, 4] x1, y1, x2, y2 (any unit), `scores` [N]; a box goes when a kept box of its class with a
    higher score (or the same score and a lower index) overlaps it with IoU > `iou`. Returns kept indices,
    highest score first (ties keep input order, as OpenCV's stable sort does); with `limit`, only the first
    `limit` of them, which greedy NMS decides from the best candidates alone: prefixes of 4 x `limit`
    candidates, doubling, are tried until one keeps `limit` boxes.

    The greedy result is computed without a loop over every kept box. A few vectorized rounds keep the best
    box of each class and drop what it overlaps (most of each cluster goes); then a sweep along x lists the
    same-class pairs among the rest that overlap beyond `iou` (each pair once, from the better box to the
    worse), and parallel rounds settle them: a box with no unsettled better neighbour is kept, a box with a
    kept better neighbour is dropped. Each round settles at least the best unsettled box, usually whole
    clusters, so they number the longest keep/drop chain, not the kept boxes. Where the sweep would list
    too many pairs (big boxes everywhere), the first kind of round continues to the end instead. Tested
    against the textbook one-box-at-a-time loop, ties included.
    """
    n = len(scores)
    if n == 0 or (limit is not None and limit <= 0):
        return np.zeros(0, np.int64)
    order = priority(np.asarray(scores))
    boxes, class_id = np.asarray(boxes), None if class_id is None else np.asarray(class_id)
    size = 4 * limit if limit is not None else n
    while size < n:  # the best `size` candidates decide the first `limit` kept boxes if they keep that many
        head = order[:size]
        kept = _greedy(boxes[head].astype(np.float64), None if class_id is None else class_id[head], iou)
        if len(kept) >= limit:
            return head[kept[:limit]]
        size *= 2
    kept = _greedy(boxes[order].astype(np.float64), None if class_id is None else class_id[order], iou)
    return order[kept if limit is None else kept[:limit]]


def priority(scores: np.ndarray) -> np.ndarray:
    """Indices by score descending, ties by index: ``np.argsort(-scores, kind="stable")``, faster.

    float32 scores become one int64 key each (the float's bits made order-preserving as an integer, then the
    index), and unique keys sort the same with any algorithm; other dtypes use the stable argsort.
    """
    if scores.dtype != np.float32 or len(scores) >= 2**31:
        return np.argsort(-scores, kind="stable")
    bits = (-scores + np.float32(0)).view(np.int32).astype(np.int64)  # + 0 turns -0.0 into 0.0
    bits ^= (bits >> 31) & 0x7FFFFFFF  # negative floats: reverse their order, below the positives
    key = (bits << 32) | np.arange(len(scores))
    key.sort()
    return key & 0xFFFFFFFF


def _greedy(xyxy: np.ndarray, groups: np.ndarray | None, iou: float) -> np.ndarray:
    """Kept positions (ascending) of greedy NMS over boxes already in priority order: a few rounds over kept
    boxes (cheap while groups are small, and they drop most of each cluster), then the pair graph."""
    kept, alive = _greedy_rounds(xyxy, groups, iou, _ROUNDS_FIRST)
    if alive.size:
        rest = _greedy_graph(xyxy[alive], None if groups is None else groups[alive], iou)
        if rest is None:
            rest_kept, _ = _greedy_rounds(xyxy[alive], None if groups is None else groups[alive], iou)
            rest = np.flatnonzero(rest_kept)
        kept[alive[rest]] = True
    return np.flatnonzero(kept)


def _greedy_graph(xyxy: np.ndarray, groups: np.ndarray | None, iou: float) -> np.ndarray | None:
    """Kept positions (ascending) of greedy NMS over boxes in priority order, settled in parallel rounds over
    the overlapping pairs; None when there are too many pairs to list."""
    n = len(xyxy)
    pairs = _overlapping_pairs(xyxy, groups, iou)
    if pairs is None:
        return None
    better, worse = pairs
    settled = np.zeros(n, bool)
    kept = np.zeros(n, bool)
    while better.size:
        blocked = np.zeros(n, bool)
        blocked[worse] = True
        new = ~settled & ~blocked
        kept |= new
        settled |= new
        settled[worse[kept[better]]] = True  # dropped: a kept better box overlaps them
        live = ~settled[better] & ~settled[worse]
        better, worse = better[live], worse[live]
    kept |= ~settled  # every better box that could drop these was dropped itself
    return np.flatnonzero(kept)


def _overlapping_pairs(
    xyxy: np.ndarray, groups: np.ndarray | None, iou: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(better, worse) positions of every same-group pair with IoU > `iou`, or None over the pair budget.

    Boxes are sorted by their left edge, each group on its own stretch of the axis. IoU > t needs a horizontal
    overlap wider than t times either width (the overlap area is at most that width times the box height), so
    a box can only pair with boxes that start less than (1 - t) of its width after it: binary search.
    """
    n = len(xyxy)
    x1, y1, x2, y2 = np.ascontiguousarray(xyxy.T)
    lo = min(float(x1.min()), float(x2.min()))
    span = max(float(x1.max()), float(x2.max())) - lo + 1.0
    key = x1 - lo
    if groups is not None:
        g = np.unique(groups, return_inverse=True)[1].reshape(-1)
        key = key + g * (2 * span)
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    reach = sorted_key + np.maximum(x2 - x1, 0)[by_key] * (1.0 - min(max(iou, 0.0), 1.0))
    end = np.searchsorted(sorted_key, reach + 1e-9 * span, side="left")  # strictly before the right edge
    count = np.maximum(end - np.arange(n) - 1, 0)
    total = int(count.sum())
    if total > _PAIR_BUDGET or total > _PAIRS_PER_BOX * n:
        return None
    first = np.repeat(np.arange(n), count)
    step = np.arange(total) - np.repeat(np.cumsum(count) - count, count) + 1
    a, b = by_key[first], by_key[first + step]
    w = np.minimum(x2[a], x2[b])
    w -= np.maximum(x1[a], x1[b])
    h = np.minimum(y2[a], y2[b])
    h -= np.maximum(y1[a], y1[b])
    np.maximum(w, 0, out=w)
    np.maximum(h, 0, out=h)
    inter = w * h
    area = (x2 - x1) * (y2 - y1)
    hit = (inter > iou * (area[a] + area[b] - inter)) & (inter > 0)
    if groups is not None:
        hit &= groups[a] == groups[b]
    a, b = a[hit], b[hit]
    return np.minimum(a, b), np.maximum(a, b)


def _greedy_rounds(
    xyxy: np.ndarray, groups: np.ndarray | None, iou: float, max_rounds: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS over boxes in priority order, one round per kept box of the busiest group: each round keeps
    the best undecided box of every group and drops what it overlaps. Returns (kept mask, positions still
    undecided after `max_rounds`); greedy NMS over the undecided boxes alone finishes the job."""
    n = len(xyxy)
    groups = np.zeros(n, np.int64) if groups is None else groups
    order = np.argsort(groups, kind="stable")  # by group, priority order kept within each
    new_group = np.empty(n, bool)
    new_group[0] = True
    np.not_equal(groups[order][1:], groups[order][:-1], out=new_group[1:])
    group_of = np.cumsum(new_group)
    x1, y1, x2, y2 = np.ascontiguousarray(xyxy[order].T)
    area = (x2 - x1) * (y2 - y1)
    keep = np.zeros(n, bool)
    alive = np.arange(n)
    rounds = 0
    while alive.size and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        g = group_of[alive]
        first = np.empty(alive.size, bool)
        first[0] = True
        np.not_equal(g[1:], g[:-1], out=first[1:])
        tops = alive[first]
        keep[tops] = True
        rest = ~first
        r, t = alive[rest], tops[np.cumsum(first)[rest] - 1]
        w = np.minimum(x2[r], x2[t]) - np.maximum(x1[r], x1[t])
        h = np.minimum(y2[r], y2[t]) - np.maximum(y1[r], y1[t])
        np.maximum(w, 0, out=w)
        np.maximum(h, 0, out=h)
        inter = w * h
        alive = r[(inter <= iou * (area[r] + area[t] - inter)) | (inter <= 0)]  # survives unless IoU > threshold
    kept = np.zeros(n, bool)
    kept[order[keep]] = True
    return kept, np.sort(order[alive])


def above(scores: np.ndarray, conf: float) -> np.ndarray:
    """Flat indices (ascending) of the entries of a 2-d score array above `conf`, compared in its own dtype.

    For float32 (every detector output) OpenCV's compare + findNonZero scans the [A, C] array about twice
    as fast as ``np.flatnonzero(scores > conf)``, with the same result (the threshold is rounded to float32
    in both, as numpy does for a Python float).
    """
    if scores.ndim == 2 and scores.dtype == np.float32 and min(scores.shape) >= 2 and scores.size >= 16:
        # (OpenCV reads a Python number as a 4-element Scalar: an array shaped like one would be ambiguous)
        found = cv2.findNonZero(cv2.compare(np.ascontiguousarray(scores), float(conf), cv2.CMP_GT))
        if found is None:
            return np.zeros(0, np.int64)
        found = found.reshape(-1, 2).astype(np.int64)
        return found[:, 1] * scores.shape[1] + found[:, 0]
    return np.flatnonzero(scores.reshape(-1) > conf)


def candidates(
    scores: np.ndarray,
    conf: float,
    classes: Sequence[int] | None = None,
    multi_label: bool = False,
    class_major: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchor, class, score) of every prediction above `conf`.

    `scores` is [A, C], or [C, A] when `class_major` (Ultralytics' packed layout, read without a copy).
    Single-label keeps the best class per anchor (among `classes`, if given); multi-label keeps every pair.
    """
    if classes is not None:
        cls_index = np.asarray(sorted(set(int(c) for c in classes)), np.int64)
        n_cls = scores.shape[0 if class_major else 1]
        cls_index = cls_index[(cls_index >= 0) & (cls_index < n_cls)]
        scores = scores[cls_index] if class_major else scores[:, cls_index]
    else:
        cls_index = None
    n_cls = scores.shape[0] if class_major else scores.shape[1]
    n_anchor = scores.shape[1] if class_major else scores.shape[0]
    if class_major and not multi_label:  # the best class of every anchor is one pass down the classes
        anchor = np.flatnonzero(scores.max(0) > conf)
        rows = scores[:, anchor]
        cls = rows.argmax(0)
        score = rows[cls, np.arange(len(anchor))]
    else:
        flat = above(scores, conf)
        if multi_label:
            if class_major:
                cls, anchor = np.divmod(flat, n_anchor)
            else:
                anchor, cls = np.divmod(flat, n_cls)
            score = scores.reshape(-1)[flat]
        else:  # the best class of an anchor is its best pair above conf: a max over each anchor's run of pairs
            anchor, cls = np.divmod(flat, n_cls)
            score = scores.reshape(-1)[flat]
            if anchor.size:
                starts = np.flatnonzero(np.concatenate(([True], anchor[1:] != anchor[:-1])))
                best = np.maximum.reduceat(score, starts)
                top = np.flatnonzero(score == np.repeat(best, np.diff(np.append(starts, anchor.size))))
                top = top[np.concatenate(([True], anchor[top][1:] != anchor[top][:-1]))]  # lowest class on ties
                anchor, cls, score = anchor[top], cls[top], score[top]
    if cls_index is not None:
        cls = cls_index[cls]
    return anchor, cls.astype(np.int64), score.astype(np.float32)


def decode_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_candidates: int = 30000,
) -> Decoded:
    """Confidence filter, then class-aware (or agnostic) NMS: `boxes` [A,4] xyxy, `scores` [A,C]."""
    anchor, cls, score = candidates(scores, conf, classes, multi_label)
    return _nms_on(boxes[anchor], score, cls, iou, max_det, agnostic, max_candidates)


def decode_packed(
    packed: np.ndarray,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_candidates: int = 30000,
) -> Decoded:
    """Decode Ultralytics' raw [4+C, A] output (cx, cy, w, h, class scores) with NMS."""
    anchor, cls, score = candidates(packed[4:], conf, classes, multi_label, class_major=True)
    cxcywh = packed[:4, anchor].T
    return _nms_on(cxcywh_to_xyxy(cxcywh), score, cls, iou, max_det, agnostic, max_candidates)


def _nms_on(boxes, score, cls, iou, max_det, agnostic, max_candidates) -> Decoded:
    if len(score) > max_candidates:
        top = np.argpartition(-score, max_candidates)[:max_candidates]
        boxes, score, cls = boxes[top], score[top], cls[top]
    found = Decoded(np.asarray(boxes, np.float32), score, cls)
    if not len(score):
        return _empty()
    keep = nms(found.xyxy, score, iou, None if agnostic else cls, limit=max_det)
    return found.take(keep)


def decode_topk(
    boxes: np.ndarray,
    scores: np.ndarray,
    conf: float = 0.25,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
) -> Decoded:
    """NMS-free decoding as the end-to-end heads define it, then thresholded at `conf`.

    The reference takes the top-k anchors by their best class score, then the top-k (anchor, class)
    pairs among those. Pairs at or below `conf` are dropped afterwards, so only anchors that have a
    pair above `conf` can matter: the work is confined to those.
    """
    if classes is not None:
        keep = np.asarray(sorted(set(int(c) for c in classes if 0 <= int(c) < scores.shape[1])), np.int64)
        found = decode_topk(boxes, scores[:, keep], conf, max_det)
        found.class_id = keep[found.class_id]
        return found
    n_cls = scores.shape[1]
    k = min(max_det, scores.shape[0])
    flat = np.flatnonzero(scores.reshape(-1) > conf)
    if not flat.size:
        return _empty()
    anchors = np.unique(flat // n_cls)
    if anchors.size > k:
        best = scores[anchors].max(1)
        anchors = np.sort(anchors[np.argsort(-best, kind="stable")[:k]])
    pairs = scores[anchors]
    pair_flat = np.flatnonzero(pairs.reshape(-1) > conf)
    pair_scores = pairs.reshape(-1)[pair_flat]
    order = np.argsort(-pair_scores, kind="stable")[:k]
    row, cls = np.divmod(pair_flat[order], n_cls)
    anchor = anchors[row]
    return Decoded(np.asarray(boxes[anchor], np.float32), pair_scores[order].astype(np.float32), cls.astype(np.int64))


def decode_detections(
    detections: np.ndarray,
    conf: float = 0.25,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    count: int | None = None,
) -> Decoded:
    """Threshold an end-to-end [K, 6] output (x1, y1, x2, y2, score, class); `count` limits valid rows."""
    if count is not None:
        detections = detections[: max(0, int(count))]
    keep = detections[:, 4] > conf
    if classes is not None:
        keep &= np.isin(detections[:, 5].astype(np.int64), np.asarray(list(classes), np.int64))
    rows = detections[keep]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")][:max_det]
    return Decoded(rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int64))


def decode_vision(
    confidence: np.ndarray,
    coordinates: np.ndarray,
    num_classes: int,
    conf: float = 0.25,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
) -> Decoded:
    """Rows of CoreML's NMS pipeline: confidence [N, C'] (classes padded) and normalized cx, cy, w, h [N, 4]."""
    confidence = np.asarray(confidence, np.float32).reshape(-1, confidence.shape[-1])[:, :num_classes]
    if not len(confidence):
        return _empty()
    rows = np.arange(len(confidence))
    cls = confidence.argmax(1)
    found = Decoded(cxcywh_to_xyxy(np.asarray(coordinates).reshape(-1, 4)), confidence[rows, cls], cls.astype(np.int64))
    keep = found.scores > conf
    if classes is not None:
        keep &= np.isin(found.class_id, np.asarray(list(classes), np.int64))
    kept = found.take(np.flatnonzero(keep))
    return kept.take(np.argsort(-kept.scores, kind="stable")[:max_det])


def decode_postprocess(
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    count: int,
    conf: float = 0.25,
    max_det: int = 300,
    keep: Sequence[int] | None = None,
) -> Decoded:
    """Rows of TFLite's detection post-process op: boxes [D, 4] (y1, x1, y2, x2 normalized), classes [D]
    and scores [D], the first `count` valid."""
    n = max(0, min(int(count), len(scores)))
    yxyx = np.asarray(boxes, np.float32).reshape(-1, 4)[:n]
    found = Decoded(
        yxyx[:, [1, 0, 3, 2]],
        np.asarray(scores, np.float32).reshape(-1)[:n],
        np.rint(np.asarray(classes, np.float32).reshape(-1)[:n]).astype(np.int64),
    )
    mask = found.scores > conf
    if keep is not None:
        mask &= np.isin(found.class_id, np.asarray(list(keep), np.int64))
    kept = found.take(np.flatnonzero(mask))
    return kept.take(np.argsort(-kept.scores, kind="stable")[:max_det])


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Center/size boxes to corner boxes."""
    boxes = np.asarray(boxes, np.float32)
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def to_source(xyxy: np.ndarray, info: LetterboxInfo, normalized: bool) -> np.ndarray:
    """Map network boxes back through the letterbox to source-image pixels, clipped to the image."""
    out = np.array(xyxy, dtype=np.float32, copy=True).reshape(-1, 4)
    in_h, in_w = info.input_size
    if normalized:
        out[:, [0, 2]] *= in_w
        out[:, [1, 3]] *= in_h
    left, top = info.pad
    scale_x, scale_y = info.scales
    out[:, [0, 2]] = (out[:, [0, 2]] - left) / scale_x
    out[:, [1, 3]] = (out[:, [1, 3]] - top) / scale_y
    h, w = info.source_size
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def decode_outputs(
    meta: ModelMeta,
    outputs: dict[str, np.ndarray],
    infos: Sequence[LetterboxInfo],
    *,
    conf: float,
    iou: float,
    max_det: int,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    multi_label: bool | None = None,
) -> list[Detections]:
    """Decode float outputs of a batch as `meta` says (NMS, top-k or threshold), into source pixels."""
    out = meta.outputs
    multi_label = meta.decode.multi_label if multi_label is None else multi_label
    tensors = [np.asarray(outputs[name]) for name in out.names]
    results = []
    for b, info in enumerate(infos):
        if out.kind == "detections":
            count = int(np.asarray(tensors[1]).reshape(-1)[b]) if len(tensors) > 1 else None
            found = decode_detections(tensors[0][b], conf, max_det, classes, count)
        elif out.kind == "vision":  # CoreML's NMS pipeline: rows already selected, one image per call
            found = decode_vision(tensors[0], tensors[1], len(meta.classes), conf, max_det, classes)
        elif out.kind == "postprocess":  # TFLite_Detection_PostProcess: rows already selected
            boxes, cls, score, count = (t[b] for t in tensors)
            found = decode_postprocess(boxes, cls, score, int(np.asarray(count).reshape(-1)[0]), conf, max_det,
                                       classes)
        elif out.kind == "packed":
            found = decode_packed(tensors[0][b], conf, iou, max_det, classes, agnostic, multi_label)
        elif meta.decode.method == "topk":
            found = decode_topk(tensors[0][b], tensors[1][b], conf, max_det, classes)
        else:
            found = decode_nms(tensors[0][b], tensors[1][b], conf, iou, max_det, classes, agnostic, multi_label)
        xyxy = to_source(found.xyxy, info, out.normalized)
        results.append(Detections(xyxy, found.scores, found.class_id, meta.classes, info.source_size))
    return results
