"""Raw network outputs to Detections, in numpy: confidence filter then NMS, NMS-free top-k, threshold-only.

All functions work on one image and return :class:`~edgekit.detections.Detections`. Those of the
``decode_*`` functions stay in the network's frame (normalized 0..1 or input pixels, as the artifact's
``outputs.normalized`` says) and carry no names or image size; :func:`decode_outputs` maps them back
through the letterbox (:func:`to_source`) into source-image pixels, with the model's class names. NMS
itself is :func:`edgekit.runtimes.nms.nms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from edgekit.detections import Detections
from edgekit.meta import ModelMeta
from edgekit.runtimes.nms import nms
from edgekit.runtimes.preprocess import LetterboxInfo


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
    Single-label keeps the best class per anchor (among `classes`, if given; the lowest class on ties);
    multi-label keeps every pair.
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
    if not multi_label and (best := best_scores(scores, class_major)) is not None:
        anchor = np.flatnonzero(best > conf)
        cls, score = classes_at(scores, anchor, class_major), best[anchor]
    else:
        flat = above(scores, conf)
        if multi_label:
            if class_major:
                cls, anchor = np.divmod(flat, n_anchor)
            else:
                anchor, cls = np.divmod(flat, n_cls)
            score = scores.reshape(-1)[flat]
        else:  # a NaN among the scores: an anchor's best class is its best pair above conf (NaN is none)
            if class_major:
                cls, anchor = np.divmod(flat, n_anchor)
                by_anchor = np.lexsort((cls, anchor))
                anchor, cls, flat = anchor[by_anchor], cls[by_anchor], flat[by_anchor]
            else:
                anchor, cls = np.divmod(flat, n_cls)
            score = scores.reshape(-1)[flat]
            if anchor.size:
                starts = np.flatnonzero(np.concatenate(([True], anchor[1:] != anchor[:-1])))
                best_pair = np.maximum.reduceat(score, starts)
                top = np.flatnonzero(score == np.repeat(best_pair, np.diff(np.append(starts, anchor.size))))
                top = top[np.concatenate(([True], anchor[top][1:] != anchor[top][:-1]))]  # lowest class on ties
                anchor, cls, score = anchor[top], cls[top], score[top]
    if cls_index is not None:
        cls = cls_index[cls]
    return anchor, cls.astype(np.int64), score.astype(np.float32)


def best_scores(scores: np.ndarray, class_major: bool = False) -> np.ndarray | None:
    """The best class score of every anchor, [A], of `scores` [A, C] ([C, A] when `class_major`); None where
    a NaN is among them (a broken model: :func:`candidates` then takes each anchor's best pair above conf).

    A max down the classes of a class-major array is one elementwise pass per class. numpy's max along the
    short rows of an anchor-major array is slow (0.5 ms for [8400, 80] here), so a float32 one is transposed
    by OpenCV first (0.1 ms) and maxed the same way (0.07 ms).
    """
    if scores.ndim != 2 or scores.size == 0:
        return None
    if class_major:
        best = scores.max(0)
    elif scores.dtype == np.float32 and min(scores.shape) >= 2:
        best = cv2.transpose(np.ascontiguousarray(scores)).max(0)
    else:
        best = scores.max(1)
    if best.dtype.kind == "f" and np.isnan(best).any():
        return None
    return best


def classes_at(scores: np.ndarray, anchor: np.ndarray, class_major: bool = False) -> np.ndarray:
    """The best class (the lowest on ties) of the anchors `anchor` [K] of `scores` [A, C] ([C, A] when
    `class_major`), [K] int64: only those anchors' scores are read."""
    if class_major:
        return np.take(scores, anchor, 1).argmax(0)
    return np.take(scores, anchor, 0).argmax(1)


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
    *,
    packed: bool = False,
) -> Detections:
    """Confidence filter, then class-aware (or agnostic) NMS: `boxes` [A,4] xyxy, `scores` [A,C].

    With `packed`, the halves of Ultralytics' raw [4+C, A] output instead: `boxes` [4, A] cx, cy, w, h and
    `scores` [C, A] (``packed[:4], packed[4:]``, read without a copy). Single-label without a class filter,
    the class of a candidate is looked up only where NMS reads it (the best 2 x `max_det` candidates, as a
    rule), not for every anchor above `conf`."""
    if multi_label or classes is not None or (best := best_scores(scores, packed)) is None:
        anchor, cls, score = candidates(scores, conf, classes, multi_label, class_major=packed)
    else:
        anchor = np.flatnonzero(best > conf)
        score, cls = best[anchor], None
    if len(score) > max_candidates:
        top = np.argpartition(-score, max_candidates)[:max_candidates]
        anchor, score, cls = anchor[top], score[top], None if cls is None else cls[top]
    if not len(score):
        return Detections.empty()
    if cls is None:
        def class_of(index: np.ndarray) -> np.ndarray:
            return classes_at(scores, anchor.take(index), packed)
    else:
        class_of = cls.take
    chosen = cxcywh_to_xyxy(boxes[:, anchor].T) if packed else np.take(boxes, anchor, 0)
    kept = nms(chosen, score, iou, None if agnostic else class_of, limit=max_det)
    return Detections(chosen[kept], score[kept], class_of(kept))


def decode_topk(
    boxes: np.ndarray,
    scores: np.ndarray,
    conf: float = 0.25,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
) -> Detections:
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
        return Detections.empty()
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
    return Detections(boxes[anchor], pair_scores[order], cls)


def decode_detections(
    detections: np.ndarray,
    conf: float = 0.25,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    count: int | None = None,
) -> Detections:
    """Threshold an end-to-end [K, 6] output (x1, y1, x2, y2, score, class); `count` limits valid rows."""
    if count is not None:
        detections = detections[: max(0, int(count))]
    keep = detections[:, 4] > conf
    if classes is not None:
        keep &= np.isin(detections[:, 5].astype(np.int64), np.asarray(list(classes), np.int64))
    rows = detections[keep]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")][:max_det]
    return Detections(rows[:, :4], rows[:, 4], rows[:, 5])


def decode_vision(
    confidence: np.ndarray,
    coordinates: np.ndarray,
    num_classes: int,
    conf: float = 0.25,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
) -> Detections:
    """Rows of CoreML's NMS pipeline: confidence [N, C'] (classes padded) and normalized cx, cy, w, h [N, 4]."""
    confidence = np.asarray(confidence, np.float32).reshape(-1, confidence.shape[-1])[:, :num_classes]
    if not len(confidence):
        return Detections.empty()
    rows = np.arange(len(confidence))
    cls = confidence.argmax(1)
    found = Detections(cxcywh_to_xyxy(np.asarray(coordinates).reshape(-1, 4)), confidence[rows, cls], cls)
    keep = found.confidence > conf
    if classes is not None:
        keep &= np.isin(found.class_id, np.asarray(list(classes), np.int64))
    kept = found[keep]
    return kept[np.argsort(-kept.confidence, kind="stable")[:max_det]]


def decode_postprocess(
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    count: int,
    conf: float = 0.25,
    max_det: int = 300,
    keep: Sequence[int] | None = None,
) -> Detections:
    """Rows of TFLite's detection post-process op: boxes [D, 4] (y1, x1, y2, x2 normalized), classes [D]
    and scores [D], the first `count` valid."""
    n = max(0, min(int(count), len(scores)))
    yxyx = np.asarray(boxes, np.float32).reshape(-1, 4)[:n]
    found = Detections(
        yxyx[:, [1, 0, 3, 2]],
        np.asarray(scores, np.float32).reshape(-1)[:n],
        np.rint(np.asarray(classes, np.float32).reshape(-1)[:n]),
    )
    mask = found.confidence > conf
    if keep is not None:
        mask &= np.isin(found.class_id, np.asarray(list(keep), np.int64))
    kept = found[mask]
    return kept[np.argsort(-kept.confidence, kind="stable")[:max_det]]


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
        out *= np.array([in_w, in_h, in_w, in_h], np.float32)
    left, top = info.pad
    scale_x, scale_y = info.scales
    # x and y columns at once, in place: the same float32 operations as column by column, a third of the calls
    np.subtract(out, np.array([left, top, left, top], np.float32), out=out)
    np.divide(out, np.array([scale_x, scale_y, scale_x, scale_y], np.float32), out=out)
    h, w = info.source_size
    return np.clip(out, 0, np.array([w, h, w, h], np.float32), out=out)


def in_source_pixels(
    found: Detections, info: LetterboxInfo, normalized: bool, names: Sequence[str] = ()
) -> Detections:
    """`found` in the network's frame mapped back through the letterbox `info` into source-image pixels (see
    :func:`to_source`), with the class `names` and the source image's size."""
    return replace(found, xyxy=to_source(found.xyxy, info, normalized), names=names, image_size=info.source_size)


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
            raw = tensors[0][b]
            found = decode_nms(raw[:4], raw[4:], conf, iou, max_det, classes, agnostic, multi_label, packed=True)
        elif meta.decode.method == "topk":
            found = decode_topk(tensors[0][b], tensors[1][b], conf, max_det, classes)
        else:
            found = decode_nms(tensors[0][b], tensors[1][b], conf, iou, max_det, classes, agnostic, multi_label)
        results.append(in_source_pixels(found, info, out.normalized, meta.classes))
    return results
