"""Greedy NMS (edgekit.runtimes.nms) against the textbook one-box-at-a-time loop: ties, crowds, limits, fallbacks."""

import numpy as np
import pytest
from nms_reference import textbook_keep

from edgekit.runtimes import nms


def crowded(seed, n=3000, classes=3, grid=False):
    """Many small boxes in few classes: hundreds kept per class, chains of overlaps, many score ties."""
    rng = np.random.default_rng(seed)
    if grid:  # exact duplicates and boxes touching edge to edge
        xy = rng.integers(0, 40, (n, 2)).astype(np.float64) * 0.025
        wh = rng.choice([0.025, 0.05], (n, 2))
    else:
        xy = rng.uniform(0, 1, (n, 2))
        wh = rng.uniform(0.005, 0.06, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = np.round(rng.uniform(0.2, 1, n), 2).astype(np.float32)  # ties everywhere
    return boxes, scores, rng.integers(0, classes, n)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("grid", [False, True])
@pytest.mark.parametrize("iou", [0.0, 0.3, 0.7])
def test_nms_with_hundreds_kept_per_class_equals_textbook(seed, grid, iou):
    boxes, scores, cls = crowded(seed, n=400, grid=grid)
    expected = textbook_keep(boxes, scores, iou, cls)
    assert np.bincount(cls[expected]).max() > 30  # far more kept boxes per class than the first rounds settle
    np.testing.assert_array_equal(nms.nms(boxes, scores, iou, cls), expected)
    np.testing.assert_array_equal(nms.nms(boxes, scores, iou, cls, limit=50), expected[:50])
    np.testing.assert_array_equal(nms.nms(boxes, scores, iou), textbook_keep(boxes, scores, iou))


def test_nms_limit_reads_a_prefix_only_when_it_suffices():
    boxes, scores, cls = crowded(7, n=600)
    full = textbook_keep(boxes, scores, 0.5, cls)
    for limit in (1, 10, 100, 140, len(full), len(full) + 5):
        np.testing.assert_array_equal(nms.nms(boxes, scores, 0.5, cls, limit=limit), full[:limit])
    assert nms.nms(boxes, scores, 0.5, cls, limit=0).size == 0


@pytest.mark.parametrize("limit", [3, 30, 45])
def test_nms_limit_decides_later_candidates_against_those_kept(limit):
    """Clusters of near-duplicates: the best 2 x limit candidates keep few boxes, so later passes decide the
    next candidates against the boxes kept before them."""
    rng = np.random.default_rng(11)
    centers = rng.uniform(0, 1, (50, 2))
    member = np.repeat(np.arange(50), 20)
    xy = centers[member] + rng.normal(0, 0.002, (1000, 2))
    boxes = np.concatenate([xy, xy + 0.05], 1).astype(np.float32)
    scores = np.round(0.95 - 0.015 * member + rng.uniform(0, 0.03, 1000), 2).astype(np.float32)  # cluster by cluster
    cls = member % 3
    full = textbook_keep(boxes, scores, 0.5, cls)
    assert 45 <= len(full) <= 50  # about one box per cluster: a keep rate of 1 in 20
    np.testing.assert_array_equal(nms.nms(boxes, scores, 0.5, cls, limit=limit), full[:limit])
    np.testing.assert_array_equal(nms.nms(boxes, scores, 0.5, lambda i: cls[i], limit=limit), full[:limit])


def test_nms_pair_budget_fallback_equals_textbook(monkeypatch):
    boxes, scores, cls = crowded(3, n=300, grid=True)
    expected = textbook_keep(boxes, scores, 0.3, cls)
    monkeypatch.setattr(nms, "_PAIR_BUDGET", 10)
    np.testing.assert_array_equal(nms.nms(boxes, scores, 0.3, cls), expected)


@pytest.mark.parametrize("few", [True, False])  # the textbook loop for a few boxes, and the vectorized schedule
def test_nms_degenerate_boxes_are_never_suppressed(few, monkeypatch):
    if not few:
        monkeypatch.setattr(nms, "_FEW", 0)
    boxes = np.array([[0, 0, 10, 10], [5, 5, 5, 5], [8, 0, 2, 10], [0, 0, 10, 10], [3, 3, 3, 9]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    expected = textbook_keep(boxes, scores, 0.5)
    assert expected.tolist() == [0, 1, 2, 4]
    np.testing.assert_array_equal(nms.nms(boxes, scores, 0.5), expected)


@pytest.mark.parametrize("n", [1, 2, 7, 30, nms._FEW, nms._FEW + 1])
@pytest.mark.parametrize("agnostic", [False, True])
def test_nms_of_a_few_boxes_equals_textbook(n, agnostic):
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 0.1, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.05, 0.15, (n, 2))], 1).astype(np.float32)  # overlapping
    scores = np.round(rng.uniform(0.2, 1, n), 1).astype(np.float32)  # ties
    cls = rng.integers(0, 2, n)
    classes = None if agnostic else cls
    expected = textbook_keep(boxes, scores, 0.4, classes)
    assert n < 7 or len(expected) < n  # some suppressed
    np.testing.assert_array_equal(nms.nms(boxes, scores, 0.4, classes), expected)
    np.testing.assert_array_equal(nms.nms(boxes, scores, 0.4, classes, limit=3), expected[:3])


def test_priority_is_the_stable_descending_argsort():
    rng = np.random.default_rng(0)
    scores = np.round(rng.uniform(-1, 1, 3000), 2).astype(np.float32)  # ties, negatives
    scores[:4] = [0.0, -0.0, -0.0, 0.0]
    for s in (scores, scores[::-1].copy(), scores.astype(np.float64), np.zeros(0, np.float32)):
        np.testing.assert_array_equal(nms.priority(s), np.argsort(-s, kind="stable"))
