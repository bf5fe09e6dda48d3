"""The Detections result type."""

import json

import numpy as np
import pytest

from edgekit import Detections
from edgekit.errors import EdgekitError


def sample():
    return Detections(
        xyxy=[[10, 10, 50, 60], [100, 20, 150, 90], [5, 5, 8, 8]],
        confidence=[0.9, 0.4, 0.7],
        class_id=[0, 2, 0],
        names=["person", "bicycle", "car"],
        image_size=(120, 200),
    )


def test_fields_and_labels():
    d = sample()
    assert len(d) == 3 and d.xyxy.dtype == np.float32 and d.class_id.dtype == np.int64
    assert d.labels == ["person", "car", "person"]
    assert d.counts() == {"person": 2, "car": 1}
    assert d.area.tolist() == [2000, 3500, 9]


def test_filter_and_indexing():
    d = sample()
    assert d.filter(conf=0.5).confidence.tolist() == pytest.approx([0.9, 0.7])
    assert d.filter(classes=["car"]).labels == ["car"]
    assert d.filter(classes=[0], min_area=100).xyxy.tolist() == [[10, 10, 50, 60]]
    assert len(d[1]) == 1 and d[1].labels == ["car"]
    assert len(d[d.confidence > 2]) == 0
    with pytest.raises(EdgekitError, match="unknown class 'dog'"):
        d.filter(classes=["dog"])


def test_json():
    doc = json.loads(sample().to_json(source="a.jpg"))
    assert doc["source"] == "a.jpg" and doc["image_size"] == {"height": 120, "width": 200}
    assert doc["detections"][0] == {"class_id": 0, "label": "person", "confidence": 0.9, "xyxy": [10, 10, 50, 60]}


def test_draw_marks_boxes_without_touching_the_input():
    image = np.zeros((120, 200, 3), np.uint8)
    drawn = sample().draw(image)
    assert image.max() == 0 and drawn.shape == image.shape
    assert drawn[10, 30].any() and drawn[60, 30].any()  # top and bottom edges of the first box
    assert not drawn[110, 190].any()


def test_empty_and_mismatch():
    assert len(Detections.empty(["a"])) == 0 and Detections.empty().to_list() == []
    with pytest.raises(ValueError, match="differ in length"):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))
