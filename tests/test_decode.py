"""Decoding in numpy: NMS decoding against OpenCV, top-k against the reference definition, box mapping."""

import cv2
import numpy as np
import pytest
from nms_reference import one_at_a_time_nms, textbook_keep

from edgekit.detections import Detections
from edgekit.runtimes import decode, nms
from edgekit.runtimes.preprocess import LetterboxInfo


def synthetic_outputs(seed=0, anchors=2000, classes=20, objects=12):
    """Realistic raw outputs: low background scores and clusters of overlapping boxes around objects."""
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 1, (anchors, 2)).astype(np.float32)
    boxes = np.concatenate([boxes, boxes + rng.uniform(0.02, 0.2, (anchors, 2))], 1).astype(np.float32)
    scores = (1 / (1 + np.exp(-rng.normal(-6, 1.5, (anchors, classes))))).astype(np.float32)
    for _ in range(objects):
        center, size, cls = rng.uniform(0.1, 0.8, 2), rng.uniform(0.05, 0.3, 2), rng.integers(classes)
        members = rng.choice(anchors, 25, replace=False)
        jitter = rng.normal(0, 0.01, (25, 4))
        boxes[members] = np.concatenate([center - size / 2, center + size / 2]) + jitter
        scores[members, cls] = rng.uniform(0.3, 0.95, 25)
    return boxes, scores


def opencv_nms(boxes, scores, cls, conf, iou):
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls.tolist(), conf, iou)
    return np.asarray(keep, np.int64).reshape(-1)


@pytest.mark.parametrize("seed", range(5))
def test_class_aware_nms_keeps_what_opencv_keeps(seed):
    boxes, scores = synthetic_outputs(seed)
    anchor, cls, score = decode.candidates(scores, 0.25)
    ours = decode.decode_nms(boxes, scores, conf=0.25, iou=0.45, max_det=1000)
    theirs = opencv_nms(boxes[anchor], score, cls, 0.25, 0.45)
    assert sorted(map(tuple, ours.xyxy.round(6).tolist())) == sorted(
        map(tuple, boxes[anchor][theirs].round(6).tolist())
    )
    assert len(ours.confidence) > 5  # the clusters collapse to a few boxes each, not to nothing


def test_agnostic_nms_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9.5], [20, 20, 30, 30]], np.float32)
    scores = np.array([[0.9, 0], [0, 0.8], [0.7, 0]], np.float32)
    aware = decode.decode_nms(boxes, scores, conf=0.25, iou=0.5)
    agnostic = decode.decode_nms(boxes, scores, conf=0.25, iou=0.5, agnostic=True)
    assert aware.class_id.tolist() == [0, 1, 0]
    assert agnostic.class_id.tolist() == [0, 0] and agnostic.confidence.tolist() == pytest.approx([0.9, 0.7])


def test_conf_classes_max_det_and_multi_label():
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], np.float32)
    scores = np.array([[0.9, 0.5], [0.2, 0.3], [0.6, 0.1]], np.float32)
    assert decode.decode_nms(boxes, scores, conf=0.25).confidence.tolist() == pytest.approx([0.9, 0.6, 0.3])
    only1 = decode.decode_nms(boxes, scores, conf=0.25, classes=[1])
    assert only1.class_id.tolist() == [1, 1] and only1.confidence.tolist() == pytest.approx([0.5, 0.3])
    assert len(decode.decode_nms(boxes, scores, conf=0.25, max_det=1).confidence) == 1
    multi = decode.decode_nms(boxes, scores, conf=0.25, multi_label=True)
    pairs = sorted(zip(multi.class_id.tolist(), [round(float(s), 3) for s in multi.confidence]))
    assert pairs == [(0, 0.6), (0, 0.9), (1, 0.3), (1, 0.5)]


def test_candidate_cap_keeps_the_best():
    rng = np.random.default_rng(1)
    boxes = np.tile(np.arange(500, dtype=np.float32)[:, None] * 2, (1, 4)) + [0, 0, 1, 1]
    scores = rng.uniform(0.3, 1, (500, 1)).astype(np.float32)
    capped = decode.decode_nms(boxes, scores, conf=0.25, max_candidates=10)
    assert np.sort(capped.confidence).tolist() == pytest.approx(np.sort(scores[:, 0])[-10:].tolist())


def test_packed_equals_boxes_scores():
    boxes, scores = synthetic_outputs(3)
    cxcywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
    packed = np.concatenate([cxcywh, scores], 1).T.copy()
    a = decode.decode_nms(packed[:4], packed[4:], conf=0.25, iou=0.5, classes=[0, 3, 5], packed=True)
    b = decode.decode_nms(boxes, scores, conf=0.25, iou=0.5, classes=[0, 3, 5])
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-6)
    assert a.class_id.tolist() == b.class_id.tolist()


def reference_topk(boxes, scores, k):
    """The end-to-end heads' definition, written plainly: top-k anchors, then top-k pairs among them."""
    anchors = np.argsort(-scores.max(1), kind="stable")[:k]
    pairs = scores[anchors].reshape(-1)
    order = np.argsort(-pairs, kind="stable")[:k]
    rows, cls = np.divmod(order, scores.shape[1])
    return boxes[anchors[rows]], pairs[order], cls


@pytest.mark.parametrize("k, conf", [(300, 0.25), (5, 0.25), (300, 0.0), (20, 0.01)])
def test_topk_matches_the_reference_definition(k, conf):
    boxes, scores = synthetic_outputs(4, anchors=1500, classes=30, objects=20)
    found = decode.decode_topk(boxes, scores, conf=conf, max_det=k)
    ref_boxes, ref_scores, ref_cls = reference_topk(boxes, scores, k)
    keep = ref_scores > conf
    assert set(zip(found.class_id.tolist(), found.confidence.tolist())) == set(
        zip(ref_cls[keep].tolist(), ref_scores[keep].tolist())
    )
    np.testing.assert_array_equal(np.sort(found.xyxy, 0), np.sort(ref_boxes[keep], 0))


def test_topk_class_filter():
    boxes, scores = synthetic_outputs(5)
    found = decode.decode_topk(boxes, scores, conf=0.25, classes=[2, 7])
    assert set(found.class_id.tolist()) <= {2, 7}
    manual = scores.copy()
    manual[:, [c for c in range(scores.shape[1]) if c not in (2, 7)]] = 0
    expected = decode.decode_topk(boxes, manual, conf=0.25)
    assert sorted(found.confidence.tolist()) == sorted(expected.confidence.tolist())


def test_detections_threshold_and_count():
    rows = np.array(
        [[0, 0, 1, 1, 0.9, 2], [0, 0, 1, 1, 0.1, 1], [0, 0, 1, 1, 0.8, 0], [0, 0, 1, 1, 0.95, 1]], np.float32
    )
    assert decode.decode_detections(rows, conf=0.25).class_id.tolist() == [1, 2, 0]
    assert decode.decode_detections(rows, conf=0.25, count=3).class_id.tolist() == [2, 0]
    assert decode.decode_detections(rows, conf=0.25, classes=[0]).class_id.tolist() == [0]
    assert len(decode.decode_detections(rows, conf=0.25, count=0).confidence) == 0


def test_postprocess_rows_swap_to_xyxy_and_respect_count():
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4]], np.float32)  # y1 x1 y2 x2
    classes = np.array([2, 0, 1], np.float32)
    scores = np.array([0.9, 0.5, 0.8], np.float32)
    found = decode.decode_postprocess(boxes, classes, scores, count=2, conf=0.25)
    np.testing.assert_allclose(found.xyxy, [[0.2, 0.1, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0]])
    assert found.class_id.tolist() == [2, 0] and found.confidence.tolist() == pytest.approx([0.9, 0.5])
    assert decode.decode_postprocess(boxes, classes, scores, 3, conf=0.6).class_id.tolist() == [2, 1]
    assert decode.decode_postprocess(boxes, classes, scores, 3, keep=[1]).class_id.tolist() == [1]
    assert len(decode.decode_postprocess(boxes, classes, scores, 0).confidence) == 0


def test_to_source_inverts_the_letterbox_and_clips():
    info = LetterboxInfo(scale=0.5, pad=(0, 40), source_size=(200, 400), input_size=(180, 200))
    pixels = decode.to_source(np.array([[10, 50, 110, 90], [-5, 0, 500, 500]], np.float32), info, normalized=False)
    np.testing.assert_allclose(pixels, [[20, 20, 220, 100], [0, 0, 400, 200]])
    normalized = decode.to_source(np.array([[0.05, 50 / 180, 0.55, 0.5]], np.float32), info, normalized=True)
    np.testing.assert_allclose(normalized, [[20, 20, 220, 100]], atol=1e-4)
    # a stretch (no kept aspect): a 400 x 144 source resized to 200 x 180, x by 0.5 and y by 1.25
    stretched = LetterboxInfo(scale=0.5, pad=(0, 0), source_size=(144, 400), input_size=(180, 200), scale_y=1.25)
    box = decode.to_source(np.array([[10, 50, 110, 90]], np.float32), stretched, normalized=False)
    np.testing.assert_allclose(box, [[20, 40, 220, 72]], rtol=1e-6)


def test_decoders_return_detections_in_the_network_frame_mapped_to_source_pixels_after():
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.8]], np.float32)
    scores = np.array([[0.9, 0.1], [0.2, 0.7]], np.float32)
    found = decode.decode_nms(boxes, scores, conf=0.25)
    assert isinstance(found, Detections) and found.image_size is None and not len(found.names)
    np.testing.assert_array_equal(found.xyxy, boxes)
    info = LetterboxInfo(scale=0.5, pad=(0, 40), source_size=(200, 400), input_size=(180, 200))
    mapped = decode.in_source_pixels(found, info, normalized=True, names=["a", "b"])
    np.testing.assert_array_equal(mapped.xyxy, decode.to_source(boxes, info, normalized=True))
    assert mapped.labels == ["a", "b"] and mapped.image_size == (200, 400)
    assert mapped.confidence.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_array_equal(found.xyxy, boxes)  # the network-frame result is left as it was


def test_empty_inputs():
    boxes = np.zeros((10, 4), np.float32)
    scores = np.zeros((10, 3), np.float32)
    assert len(decode.decode_nms(boxes, scores).confidence) == 0
    assert len(decode.decode_topk(boxes, scores).confidence) == 0
    assert nms.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("agnostic", [False, True])
def test_vectorized_nms_equals_textbook_greedy(seed, agnostic):
    boxes, scores = synthetic_outputs(seed, anchors=1500, classes=5, objects=20)
    anchor, cls, score = decode.candidates(scores, 0.2)
    score = np.round(score, 2)  # many ties
    classes = None if agnostic else cls
    b = boxes[anchor].astype(np.float64)
    np.testing.assert_array_equal(nms.nms(b, score, 0.5, classes), one_at_a_time_nms(b, score, 0.5, classes))


def test_nms_on_a_real_detector_output_equals_textbook():
    import edgekit
    from edgekit import assets
    from edgekit.images import read_image
    from edgekit.runtimes.preprocess import preprocess

    detector = edgekit.load(assets.shapes_image().with_name("shapes.onnx"))
    tensor, _ = preprocess(read_image(assets.shapes_image()), detector.meta.input, detector.meta.imgsz)
    out = detector.engine.run({detector.input.name: tensor})
    boxes, scores = out["boxes"][0], out["scores"][0]
    anchor, cls, score = decode.candidates(scores, 0.05)
    assert len(score) > 100
    for iou in (0.3, 0.45, 0.7):
        expected = textbook_keep(boxes[anchor], score, iou, cls)
        np.testing.assert_array_equal(nms.nms(boxes[anchor], score, iou, cls), expected)
        found = decode.decode_nms(boxes, scores, conf=0.05, iou=iou, max_det=30)
        np.testing.assert_array_equal(found.xyxy, boxes[anchor][expected[:30]])


def reference_candidates(scores, conf, multi_label):
    """Plain definition: every pair above conf, or each anchor's argmax class where it is above conf."""
    if multi_label:
        anchor, cls = np.nonzero(scores > conf)
        return anchor, cls, scores[anchor, cls]
    cls = scores.argmax(1)
    best = scores[np.arange(len(scores)), cls]
    anchor = np.flatnonzero(best > conf)
    return anchor, cls[anchor], best[anchor]


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("class_major", [False, True])
@pytest.mark.parametrize("classes", [7, 80])
def test_candidates_equal_the_plain_definition(multi_label, class_major, classes):
    _, scores = synthetic_outputs(2, anchors=3000, classes=classes, objects=30)
    scores = np.round(scores, 1)  # ties between classes of one anchor: argmax takes the lowest class
    scores[5] = 0.25  # exactly at the threshold: not above it
    given = np.ascontiguousarray(scores.T) if class_major else scores
    anchor, cls, score = decode.candidates(given, 0.25, multi_label=multi_label, class_major=class_major)
    ref = reference_candidates(scores, 0.25, multi_label)
    got = sorted(zip(anchor.tolist(), cls.tolist(), score.tolist()))
    assert got == sorted(zip(*(r.tolist() for r in ref)))
    assert len(got) > 50 and 5 not in anchor.tolist()


@pytest.mark.parametrize("class_major", [False, True])
def test_candidates_skip_nan_scores(class_major):
    scores = np.full((6, 16), 0.1, np.float32)
    scores[1, [3, 9]] = [0.5, 0.7]
    scores[4, [0, 2, 15]] = [np.nan, 0.6, 0.6]  # NaN is no candidate; of two equal scores the lower class wins
    given = np.ascontiguousarray(scores.T) if class_major else scores
    assert decode.best_scores(given, class_major) is None  # the NaN sends candidates to its pairwise path
    anchor, cls, score = decode.candidates(given, 0.25, class_major=class_major)
    assert anchor.tolist() == [1, 4] and cls.tolist() == [9, 2] and score.tolist() == pytest.approx([0.7, 0.6])


def test_best_scores_in_every_layout():
    _, scores = synthetic_outputs(1, anchors=500, classes=16, objects=10)
    expected = scores.max(1)
    for layout in (scores, scores[:, :15], np.asfortranarray(scores), scores.astype(np.float64), scores[:, :1]):
        np.testing.assert_array_equal(decode.best_scores(layout), layout.max(1))
    np.testing.assert_array_equal(decode.best_scores(np.ascontiguousarray(scores.T), class_major=True), expected)
    anchors = np.array([3, 0, 499])
    np.testing.assert_array_equal(decode.classes_at(scores, anchors), scores[anchors].argmax(1))
    np.testing.assert_array_equal(decode.classes_at(scores.T, anchors, class_major=True), scores[anchors].argmax(1))


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("max_det", [5, 300])
def test_decode_nms_classes_only_where_nms_reads_them_equal_all_candidates(packed, max_det):
    """decode_nms looks classes up lazily (single-label, no class filter); the result is NMS over every
    candidate with its class, including when the first prefix of candidates keeps too few boxes."""
    boxes, scores = synthetic_outputs(4, anchors=3000, classes=80, objects=60)
    anchor, cls, score = decode.candidates(scores, 0.25)
    kept = nms.nms(boxes[anchor], score, 0.45, cls)[:max_det]
    if packed:
        xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        found = decode.decode_nms(np.ascontiguousarray(xywh.T), np.ascontiguousarray(scores.T), 0.25, 0.45,
                                  max_det, packed=True)
        np.testing.assert_allclose(found.xyxy, boxes[anchor][kept], atol=1e-6)
    else:
        found = decode.decode_nms(boxes, scores, 0.25, 0.45, max_det)
        np.testing.assert_array_equal(found.xyxy, boxes[anchor][kept])
    assert len(kept) == min(max_det, len(nms.nms(boxes[anchor], score, 0.45, cls))) and len(kept) > 4
    np.testing.assert_array_equal(found.class_id, cls[kept])
    np.testing.assert_array_equal(found.confidence, score[kept])


def test_above_equals_numpy_at_float32_thresholds():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, (500, 13)).astype(np.float32)
    scores[0, :3] = [np.float32(0.3), np.nextafter(np.float32(0.3), 1), np.nextafter(np.float32(0.3), 0)]
    for conf in (0.3, 0.5, 0.999, 1.0):
        np.testing.assert_array_equal(decode.above(scores, conf), np.flatnonzero(scores.reshape(-1) > conf))
    for shape in [(4, 1), (1, 4), (2, 2), (4, 4), (16, 1), (1, 16), (2, 8)]:  # OpenCV's scalar-shaped arrays
        small = rng.uniform(0, 1, shape).astype(np.float32)
        np.testing.assert_array_equal(decode.above(small, 0.5), np.flatnonzero(small.reshape(-1) > 0.5))
    wide = scores.astype(np.float64)
    np.testing.assert_array_equal(decode.above(wide, 0.3), np.flatnonzero(wide > 0.3))


def test_box_iou_is_the_textbook_ratio():
    from edgekit.detections import box_iou

    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]], np.float32)
    expected = np.array([[1.0, 50 / 150, 0.0, 0.0], [25 / 175, 50 / 150, 0.0, 0.0]])
    np.testing.assert_allclose(box_iou(a, b), expected, rtol=1e-12)
    assert box_iou(a, b[:0]).shape == (2, 0) and box_iou(b[3], b[3]).item() == 0.0  # no area: no overlap
