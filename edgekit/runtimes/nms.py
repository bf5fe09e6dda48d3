"""Greedy non-maximum suppression in numpy, exact and vectorized: :func:`nms` and the score order it keeps.

Greedy NMS as the YOLO family's val and inference apply it (the ``non_max_suppression`` of Ultralytics and of
YOLOv9's ``utils/general.py``, over ``torchvision.ops.nms`` with a per-class box offset): the best box stays,
every box of its class overlapping it beyond the IoU threshold goes, repeat. The result is the textbook
loop's; only the schedule is vectorized (see :func:`nms`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_PAIR_BUDGET = 2_000_000  # overlapping-pair candidates beyond which NMS falls back to rounds over kept boxes
_PAIRS_PER_BOX = 64  # ... or beyond this many per box (big boxes everywhere): rounds are cheaper there
_FEW = 48  # boxes up to which greedy NMS runs the textbook loop (its cost grows with them, the schedule's less)
_HEAD = 2  # the first candidates read with a limit: this many times the limit
_ROUNDS_FIRST = 8  # rounds over kept boxes before the pair graph settles the rest ...
_ROUNDS_PAYING = 8  # ... unless a round drops fewer than 1 in this many undecided boxes (few clusters left)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou: float,
    class_id: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """Exact greedy NMS; with `class_id`, boxes only suppress boxes of their own class.

    `class_id` is [N] integers, or a function from box indices [K] to their classes [K]: for a caller whose
    classes cost a pass over each box's scores (decode), where only the candidates NMS reads need one.

    `boxes` [N, 4] x1, y1, x2, y2 (any unit), `scores` [N]; a box goes when a kept box of its class with a
    higher score (or the same score and a lower index) overlaps it with IoU > `iou`. Returns kept indices,
    highest score first (ties keep input order, as OpenCV's stable sort does); with `limit`, only the first
    `limit` of them, which greedy NMS decides from the best candidates alone: the best 2 x `limit` first,
    then, while fewer than `limit` are kept, the next ones (as many as the keep rate so far says, at least
    `limit`) against the boxes kept so far.

    The greedy result is computed without a loop over every kept box. A few vectorized rounds keep the best
    box of each class and drop what it overlaps (most of each cluster goes; the rounds stop early once one
    drops few boxes); then a sweep along x lists the
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
    boxes = np.asarray(boxes)
    if class_id is None:
        classes_of = None
    elif callable(class_id):
        classes_of = class_id
    else:
        classes_of = np.asarray(class_id).take
    if limit is None or limit >= n:
        kept = _greedy(boxes.take(order, 0).astype(np.float64), None if classes_of is None else classes_of(order), iou)
        return order[kept if limit is None else kept[:limit]]
    # The best candidates first; where they keep fewer than `limit`, the next ones are decided against the boxes
    # kept so far (greedy NMS decides a box from the kept boxes above it alone), as many as the keep rate says.
    kept_at = order[:0]
    done, size = 0, min(n, _HEAD * limit)
    while True:
        at = np.concatenate([kept_at, order[done:size]])
        kept = _greedy(boxes.take(at, 0).astype(np.float64), None if classes_of is None else classes_of(at), iou)
        kept_at, done = at[kept], size
        if len(kept_at) >= limit or done >= n:
            return kept_at[:limit]
        needed = 1.25 * (limit - len(kept_at)) * done / len(kept_at)  # the first candidate is always kept
        size = min(n, done + max(limit, int(needed)))


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
    boxes (cheap while groups are small, and they drop most of each cluster), then the pair graph; a few
    boxes, the textbook loop over their IoU matrix (the vectorized schedule's fixed cost is larger there)."""
    if len(xyxy) <= _FEW:
        return _greedy_few(xyxy, groups, iou)
    kept, alive = _greedy_rounds(xyxy, groups, iou, _ROUNDS_FIRST, _ROUNDS_PAYING)
    if alive.size:
        rest = _greedy_graph(xyxy[alive], None if groups is None else groups[alive], iou)
        if rest is None:
            rest_kept, _ = _greedy_rounds(xyxy[alive], None if groups is None else groups[alive], iou)
            rest = np.flatnonzero(rest_kept)
        kept[alive[rest]] = True
    return np.flatnonzero(kept)


def _greedy_few(xyxy: np.ndarray, groups: np.ndarray | None, iou: float) -> np.ndarray:
    """Kept positions (ascending) of greedy NMS over a few boxes in priority order, one box at a time over
    their IoU matrix (IoU as :func:`_overlapping_pairs` compares it)."""
    x1, y1, x2, y2 = (c[:, None] for c in np.ascontiguousarray(xyxy.T))
    w = np.minimum(x2, x2.T) - np.maximum(x1, x1.T)
    h = np.minimum(y2, y2.T) - np.maximum(y1, y1.T)
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area = (x2 - x1) * (y2 - y1)
    over = (inter > iou * (area + area.T - inter)) & (inter > 0)
    if groups is not None:
        over &= groups[:, None] == groups[None, :]
    keep = np.ones(len(xyxy), bool)
    for i in range(len(xyxy)):
        if keep[i]:  # kept: it drops the worse boxes it overlaps
            keep[i + 1:] &= ~over[i, i + 1:]
    return np.flatnonzero(keep)


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
    a box can only pair with boxes that start less than (1 - t) of its width after it: binary search. (Gathers
    are ``np.take`` on single columns: numpy's fancy indexing of rows costs several times more per call.)
    """
    n = len(xyxy)
    x1, y1, x2, y2 = np.ascontiguousarray(xyxy.T)
    lo = min(float(x1.min()), float(x2.min()))
    span = max(float(x1.max()), float(x2.max())) - lo + 1.0
    key = x1 - lo
    if groups is not None:
        if groups.dtype.kind in "iu" and 0 <= groups.min() and groups.max() < 2**20:  # class ids: stretches as is
            stretch = groups
        else:
            stretch = np.unique(groups, return_inverse=True)[1].reshape(-1)
        key += stretch * (2 * span)
    by_key = np.argsort(key)  # equal keys in any order: the first of them lists the others
    sorted_key = key.take(by_key)
    width = x2 - x1
    np.maximum(width, 0, out=width)
    reach = width.take(by_key)
    reach *= 1.0 - min(max(iou, 0.0), 1.0)
    reach += sorted_key
    reach += 1e-9 * span
    end = np.searchsorted(sorted_key, reach, side="left")  # strictly before the right edge
    count = end - np.arange(1, n + 1)
    np.maximum(count, 0, out=count)
    total = int(count.sum())
    if total > _PAIR_BUDGET or total > _PAIRS_PER_BOX * n:
        return None
    first = np.repeat(np.arange(n), count)
    step = np.arange(1, total + 1) - np.repeat(np.cumsum(count) - count, count)
    a, b = by_key.take(first), by_key.take(first + step)
    w = np.minimum(x2.take(a), x2.take(b))
    w -= np.maximum(x1.take(a), x1.take(b))
    h = np.minimum(y2.take(a), y2.take(b))
    h -= np.maximum(y1.take(a), y1.take(b))
    np.maximum(w, 0, out=w)
    np.maximum(h, 0, out=h)
    inter = w * h
    area = (x2 - x1) * (y2 - y1)
    union = area.take(a) + area.take(b) - inter
    hit = (inter > iou * union) & (inter > 0)  # (pairs never cross groups: their stretches are 2 spans apart)
    a, b = a[hit], b[hit]
    return np.minimum(a, b), np.maximum(a, b)


def _greedy_rounds(
    xyxy: np.ndarray, groups: np.ndarray | None, iou: float, max_rounds: int | None = None,
    paying: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS over boxes in priority order, one round per kept box of the busiest group: each round keeps
    the best undecided box of every group and drops what it overlaps. Returns (kept mask, positions still
    undecided after `max_rounds`, or after the first round that decided fewer than 1 in `paying` of the
    undecided boxes); greedy NMS over the undecided boxes alone finishes the job."""
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
        before = alive.size
        alive = r[(inter <= iou * (area[r] + area[t] - inter)) | (inter <= 0)]  # survives unless IoU > threshold
        if paying is not None and (before - alive.size) * paying < before:
            break
    kept = np.zeros(n, bool)
    kept[order[keep]] = True
    return kept, np.sort(order[alive])
