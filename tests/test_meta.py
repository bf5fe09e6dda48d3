"""The metadata schema: round trips, validation messages, Ultralytics metadata, guessing."""

import json

import pytest

from edgekit import meta, meta_foreign
from edgekit.errors import MetadataError

from onnx_models import CLASSES, edgekit_meta, ultralytics_props


def test_round_trip_keeps_every_field():
    original = edgekit_meta(layout="NHWC", dtype="uint8", align="topleft", conf=0.3, iou=0.5)
    original.source = meta.SourceInfo(file="m.pt", sha256="ab" * 32, edgekit="0.1.0")
    original.verification = {"boxes_max_abs": 1e-6}
    again = meta.from_json(original.to_json())
    assert again == original
    assert json.loads(original.to_json())["schema"] == meta.SCHEMA


def test_defaults_fill_in_optional_fields():
    found = meta.from_dict({"schema": 1, "family": "x", "classes": ["a"], "imgsz": [640, 480]})
    assert found.imgsz == (640, 480)
    assert found.input.layout == "NCHW" and found.input.letterbox.pad_value == 114
    assert found.outputs.kind == "boxes_scores" and found.decode.method == "nms"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema": 99}, "schema 99"),
        ({"classes": []}, "'classes'"),
        ({"imgsz": [640]}, "'imgsz'"),
        ({"imgsz": [0, 640]}, "'imgsz' must be positive"),
        ({"input": {"layout": "NCWH"}}, "'input.layout' must be one of NCHW, NHWC"),
        ({"input": {"range": [0, 2]}}, "'input.range'"),
        ({"input": {"dtype": "int8"}}, "'input.quant' is required"),
        ({"input": {"letterbox": {"align": "middle"}}}, "'input.letterbox.align'"),
        ({"input": {"letterbox": {"pad_value": 300}}}, "'input.letterbox.pad_value'"),
        ({"input": {"letterbox": {"keep_ratio": "no"}}}, "'input.letterbox.keep_ratio' must be bool"),
        ({"input": {"letterbox": {"rounding": "ceil"}}}, "'input.letterbox.rounding'"),
        ({"outputs": {"kind": "boxes"}}, "'outputs.kind'"),
        ({"outputs": {"kind": "boxes_scores", "names": ["x"]}}, "'outputs.names'"),
        ({"decode": {"conf": 2}}, "'decode' has out-of-range"),
        ({"decode": {"max_det": "many"}}, "'decode.max_det' must be int"),
        ({"outputs": {"kind": "detections"}, "decode": {"method": "nms"}}, "'decode.method'"),
        ({"outputs": {"kind": "postprocess", "names": ["a", "b"]}}, "'outputs.names' must name 4..4"),
        ({"outputs": {"kind": "postprocess"}, "decode": {"method": "topk"}}, "'decode.method'"),
        ({"precision": "fp8"}, "'precision'"),
    ],
)
def test_bad_fields_are_named(change, message):
    data = {"schema": 1, "family": "x", "classes": ["a"], "imgsz": [640, 640]}
    data.update(change)
    with pytest.raises(MetadataError, match=message.replace("(", r"\(")):
        meta.from_dict(data)


def test_postprocess_outputs_default_to_the_op_names():
    found = meta.from_dict({"schema": 1, "family": "x", "classes": ["a"], "imgsz": [320, 320],
                            "outputs": {"kind": "postprocess"}})
    assert found.outputs.names == ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    assert found.decode.method == "none"


def test_missing_required_field_and_bad_json():
    with pytest.raises(MetadataError, match="'family' is missing"):
        meta.from_dict({"schema": 1, "classes": ["a"], "imgsz": [1, 1]})
    with pytest.raises(MetadataError, match="not valid JSON"):
        meta.from_json("{not json")


def test_ultralytics_packed_output():
    props = ultralytics_props(imgsz=(320, 256))
    found = meta_foreign.from_ultralytics(props, "images", "float32", ["output0"], [[1, 7, 1680]])
    assert found.classes == CLASSES and found.imgsz == (320, 256)
    assert found.outputs.kind == "packed" and not found.outputs.normalized
    assert found.decode.method == "nms" and found.decode.iou == 0.7
    assert found.variant == "YOLO11n" and found.origin == "ultralytics"


def test_ultralytics_end_to_end_output():
    props = ultralytics_props(end2end=True)
    found = meta_foreign.from_ultralytics(props, "images", "float32", ["output0"], [[1, 300, 6]])
    assert found.outputs.kind == "detections" and found.decode.method == "none"


def test_ultralytics_other_tasks_are_refused():
    props = dict(ultralytics_props(), task="segment")
    with pytest.raises(MetadataError, match="'segment' models are not supported yet"):
        meta_foreign.from_ultralytics(props, "images", "float32", ["output0", "output1"], [[1, 39, 10], [1, 32, 8, 8]])


def test_guess_from_tensors():
    shapes = [[1, 10, 5], [1, 10, 4]]
    found = meta_foreign.guess("x", [1, 640, 640, 3], "float32", ["scores", "boxes"], shapes, (640, 640))
    assert found.input.layout == "NHWC" and found.outputs.names == ["boxes", "scores"]
    assert found.classes == [f"class{i}" for i in range(5)]
    packed = meta_foreign.guess("x", [1, 3, 64, 64], "float32", ["out"], [[1, 84, 84]], (64, 64))
    assert packed.outputs.kind == "packed" and packed.num_classes == 80
    with pytest.raises(MetadataError, match="cannot tell"):
        meta_foreign.guess("x", [1, 3, 64, 64], "float32", ["a", "b", "c"], [[1], [2], [3]], (64, 64))
