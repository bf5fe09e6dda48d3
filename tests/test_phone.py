"""Phone-ready TFLite (--phone): TFLite_Detection_PostProcess with unit anchors and MediaPipe metadata,
run by MediaPipe Tasks' ObjectDetector and by edgekit's own LiteRT engine."""

import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.cli import main
from edgekit.converters.backends.tflite.export import read_model
from edgekit.converters.backends.tflite.phone import OUTPUT_NAMES, POSTPROCESS_OP, mediapipe_detect
from edgekit.converters.convert import convert_many
from edgekit.converters.verify import detection_rows
from edgekit.eval.synthetic import write_yolo_dataset
from edgekit.images import read_image
from edgekit.runtimes.litert import LiteRTEngine
from edgekit.runtimes.preprocess import preprocess

from checkpoints import (
    random_damo,
    random_ultralytics,
    random_yolov9,
    write_damo_checkpoint,
    write_ultralytics_checkpoint,
    write_yolov9_checkpoint,
)

pytest.importorskip("mediapipe")
IMGSZ = 160


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {
        "yolov9": lambda: write_yolov9_checkpoint(random_yolov9("gelan-t", nc=5), root / "gelan-t.pt"),
        "yolo26": lambda: write_ultralytics_checkpoint(random_ultralytics("yolo26n", nc=5), root / "yolo26n.pt"),
        "damo": lambda: write_damo_checkpoint(random_damo("damoyolo-t", 5), root / "damo-t.pth"),
    }


@pytest.fixture(scope="module")
def phone_yolov9(checkpoints, tmp_path_factory):
    result = convert_many(checkpoints["yolov9"](), "tflite", "fp32", IMGSZ, tmp_path_factory.mktemp("p"), phone=True)[0]
    assert result.ok, result.error
    return result


@pytest.mark.convert
def test_phone_file_ends_in_the_postprocess_op(phone_yolov9):
    model = read_model(phone_yolov9.path)
    graph = model.subgraphs[0]
    last = graph.operators[-1]
    assert model.operatorCodes[last.opcodeIndex].customCode.decode() == POSTPROCESS_OP
    anchors = graph.tensors[last.inputs[2]]
    data = np.frombuffer(bytes(model.buffers[anchors.buffer].data), np.float32).reshape(-1, 4)
    assert len(data) == sum((IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert (data == [0, 0, 1, 1]).all()  # unit anchors: the op decodes (cy, cx, log h, log w) to exact boxes
    names = {m.name.decode() for m in model.metadata}
    assert {"edgekit", "TFLITE_METADATA"} <= names  # edgekit's and MediaPipe's metadata side by side
    engine = LiteRTEngine(phone_yolov9.path)
    assert [o.name for o in engine.outputs] == OUTPUT_NAMES
    assert engine.inputs[0].shape == (1, IMGSZ, IMGSZ, 3) and engine.inputs[0].dtype == "float32"


@pytest.mark.convert
def test_phone_verification_and_edgekit_runtime(phone_yolov9):
    figures = phone_yolov9.verification
    assert figures.passed and figures.max_abs["op_unmatched"] == 0 and figures.max_abs["boxes"] < 1e-3
    assert figures.extra["mediapipe_map50"] >= 0.5 and figures.extra["mediapipe_reference_detections"] > 0
    detector = edgekit.load(phone_yolov9.path)
    meta = detector.meta
    assert meta.outputs.kind == "postprocess" and not meta.input.letterbox.keep_ratio  # MediaPipe stretches
    image = read_image(assets.shapes_image())
    found = detector(image, conf=0.3)
    # the op's own rows for the photo, read by hand: the first `count` rows (y1, x1, y2, x2 normalized to the
    # stretched input), those scoring above 0.3, best first, x scaled to 640 and y to 480 pixels
    x, _ = preprocess(image, meta.input, meta.imgsz)
    out = detector.engine.run({meta.input.name: x})
    boxes, classes, scores, count = (out[name][0] for name in OUTPUT_NAMES)
    n = int(np.asarray(count).reshape(-1)[0])
    keep = np.flatnonzero(scores[:n] > 0.3)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    expected = np.clip(boxes[keep][:, [1, 0, 3, 2]] * [640, 480, 640, 480], 0, [640, 480, 640, 480])
    assert len(found) == len(keep) > 0
    np.testing.assert_allclose(found.xyxy, expected, atol=1e-3)
    np.testing.assert_allclose(found.confidence, scores[keep], atol=1e-6)
    np.testing.assert_array_equal(found.class_id, np.rint(classes[keep]).astype(np.int64))


@pytest.fixture(scope="module")
def phone_demo(tmp_path_factory):
    """The trained demo detector (ShapesNet) as a phone file: real detections to compare."""
    result = convert_many(assets.demo_checkpoint(), "tflite", "fp32", 320, tmp_path_factory.mktemp("demo"),
                          phone=True)[0]
    assert result.ok, result.error
    return result


def _iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda r: np.prod(r[:, 2:4] - r[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


@pytest.mark.convert
def test_mediapipe_object_detector_finds_what_edgekit_finds(phone_demo):
    image = read_image(assets.shapes_image())
    ours = detection_rows(edgekit.load(phone_demo.path)(image, conf=0.5))
    theirs = mediapipe_detect(phone_demo.path, [image], ["circle", "square", "triangle"], conf=0.5)[0]
    # and what the ONNX demo model finds on the same photo (letterboxed, not stretched: same objects)
    onnx = detection_rows(edgekit.load(assets.shapes_model())(image, conf=0.5))
    assert len(ours) >= 3 and len(theirs) == len(ours) and len(onnx) == len(ours)
    # MediaPipe resizes with its own sampler and rounds to pixels; the ONNX model sees a letterboxed, not a
    # stretched, image, so its boxes fit the same objects a little differently
    for other, min_iou in ((theirs, 0.9), (onnx, 0.7)):
        iou = _iou(ours, other)
        best = iou.argmax(1)
        assert (iou.max(1) > min_iou).all() and (other[best, 5] == ours[:, 5]).all(), iou.max(1)
    assert np.abs(np.sort(theirs[:, 4]) - np.sort(ours[:, 4])).max() < 0.02
    assert phone_demo.verification.extra["mediapipe_map50"] > 0.9


def test_mediapipe_metadata_writer_stand_in():
    from edgekit.converters.backends.tflite.phone import _install_metadata_version_module

    _install_metadata_version_module()
    from mediapipe.tasks.cc.metadata.python import _pywrap_metadata_version as version
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer  # the import that used to fail

    assert callable(version.GetMinimumMetadataParserVersion) and metadata_writer.Labels


@pytest.mark.convert
def test_phone_errors_are_one_line(phone_yolov9, tmp_path, capsys):
    assert main(["convert", "yolov9-t", "--to", "onnx", "--phone", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgekit: error: --phone") and "\n" not in err


@pytest.mark.slow
@pytest.mark.parametrize("family", ["yolov9", "yolo26", "damo"])
def test_phone_every_family_every_precision(checkpoints, family, tmp_path):
    calib = write_yolo_dataset(tmp_path / "calib", 24, seed=3)
    results = convert_many(checkpoints[family](), "tflite", "all", IMGSZ, tmp_path, phone=True, calib=calib,
                           calib_size=24)
    for result in results:
        assert result.ok, f"{result.precision}: {result.error}"
        figures = result.verification
        assert figures.max_abs["op_unmatched"] == 0 and figures.extra["mediapipe_map50"] >= 0.5
        engine = LiteRTEngine(result.path)
        assert engine.inputs[0].dtype == "float32"  # MediaPipe feeds float: INT8 quantizes inside the graph
        assert [o.dtype for o in engine.outputs] == ["float32"] * 4
    sizes = {r.precision: r.size_mb for r in results}
    assert sizes["int8"] < 0.4 * sizes["fp32"] and sizes["fp16"] < 0.6 * sizes["fp32"]


CAMERA = (192, 256)  # a 4:3 input (height, width), as a phone camera's default stream


@pytest.fixture(scope="module")
def phone_camera(tmp_path_factory):
    """The trained demo detector as a phone file at the camera's aspect."""
    result = convert_many(assets.demo_checkpoint(), "tflite", "fp32", list(CAMERA),
                          tmp_path_factory.mktemp("camera"), phone=True)[0]
    assert result.ok, result.error
    return result


@pytest.mark.convert
def test_phone_file_at_the_cameras_aspect(phone_camera):
    """A rectangular --imgsz reaches the graph (NHWC height x width), the op's anchors (one per cell) and the
    metadata (imgsz, MediaPipe's stretch), and MediaPipe agreed with edgekit's run of it."""
    h, w = CAMERA
    detector = edgekit.load(phone_camera.path)
    assert detector.engine.inputs[0].shape == (1, h, w, 3)
    assert list(detector.meta.imgsz) == [h, w] and not detector.meta.input.letterbox.keep_ratio
    model = read_model(phone_camera.path)
    last = model.subgraphs[0].operators[-1]
    anchors = model.subgraphs[0].tensors[last.inputs[2]]
    assert list(anchors.shape) == [(h // 8) * (w // 8), 4]  # one per cell of ShapesNet's stride-8 level
    figures = phone_camera.verification
    assert figures.passed and figures.extra["mediapipe_reference_detections"] > 0
    assert figures.extra["mediapipe_map50"] > 0.9


@pytest.mark.convert
def test_mediapipe_stretches_a_frame_of_another_aspect_as_edgekit_does(phone_camera):
    """A portrait crop of the photo into the landscape input: MediaPipe stretches it, so must edgekit (a
    letterbox, or height and width swapped anywhere, moves every box)."""
    image = np.ascontiguousarray(read_image(assets.shapes_image())[:, 80:440])  # 480 x 360: portrait
    detector = edgekit.load(phone_camera.path)
    ours = detection_rows(detector(image, conf=0.5))
    theirs = mediapipe_detect(phone_camera.path, [image], ["circle", "square", "triangle"], conf=0.5)[0]
    assert len(ours) >= 2 and len(theirs) == len(ours)
    iou = _iou(ours, theirs)
    assert (iou.max(1) > 0.9).all() and (theirs[iou.argmax(1), 5] == ours[:, 5]).all(), iou.max(1)
    x, info = preprocess(image, detector.meta.input, detector.meta.imgsz)
    assert x.shape == (1, *CAMERA, 3) and info.scales == (CAMERA[1] / 360, CAMERA[0] / 480)


def test_max_drop_reference_is_measured_as_the_phone_file_is_run(tmp_path):
    """The checkpoint's reference points on a phone conversion: run on the frames stretched as MediaPipe
    stretches them (the phone file's own preprocessing), not letterboxed. (A phone INT8 file's drop is measured
    against the FP32 phone file instead: test_phone_int8_drop_is_measured_against_the_fp32_phone_file.)"""
    from dataclasses import replace

    from edgekit.converters.accuracy import detector_points, load_accuracy_data
    from edgekit.converters.context import ExportContext
    from edgekit.converters.families import open_source
    from edgekit.converters.source_detector import SourceDetector, artifact_meta, reference_detector

    source = open_source(assets.demo_checkpoint())
    meta = artifact_meta(source, CAMERA)
    stretch = replace(meta.input.letterbox, keep_ratio=False)
    phone_meta = replace(meta, input=replace(meta.input, letterbox=stretch))
    data = load_accuracy_data(write_yolo_dataset(tmp_path / "val", 12, seed=5), len(source.classes), 0.5)
    assert any(abs(i.shape[1] / i.shape[0] - CAMERA[1] / CAMERA[0]) > 0.1 for i in data.images)
    ctx = ExportContext(source=source, deploy=None, meta=phone_meta, images=[], workdir=tmp_path, accuracy=data,
                        reference_detector=lambda: reference_detector(source, phone_meta))
    stretched = detector_points(SourceDetector(source, CAMERA, letterbox=stretch), data)
    letterboxed = detector_points(SourceDetector(source, CAMERA), data)
    assert ctx.reference_points() == pytest.approx(stretched, abs=1e-9)
    assert abs(stretched - letterboxed) > 0.1  # the two fits differ on these frames: the check can tell them apart


@pytest.mark.convert
def test_phone_int8_drop_is_measured_against_the_fp32_phone_file(phone_camera, tmp_path):
    """A phone file's post-process op keeps no row below the model's conf, in float as in INT8: the INT8 drop
    (and --max-drop) is measured against the FP32 phone file run the same way, not the checkpoint at val's
    conf 0.001, which no phone file can reach."""
    from dataclasses import replace

    from edgekit.converters.accuracy import detector_points, load_accuracy_data
    from edgekit.converters.families import open_source
    from edgekit.converters.source_detector import SourceDetector

    val = write_yolo_dataset(tmp_path / "val", 12, seed=5)
    calib = write_yolo_dataset(tmp_path / "calib", 24, seed=3)
    result = convert_many(assets.demo_checkpoint(), "tflite", "int8", list(CAMERA), tmp_path / "out", phone=True,
                          calib=calib, calib_size=24, val_data=val)[0]
    assert result.ok, result.error
    float_file = edgekit.load(phone_camera.path)
    data = load_accuracy_data(val, len(float_file.names), None)
    float_phone = detector_points(float_file, data)
    stretch = replace(float_file.meta.input.letterbox, keep_ratio=False)
    checkpoint = detector_points(SourceDetector(open_source(assets.demo_checkpoint()), CAMERA, letterbox=stretch), data)
    accuracy = result.accuracy
    assert accuracy["reference_map50_95"] == pytest.approx(float_phone, abs=1e-3)
    assert accuracy["drop"] == pytest.approx(float_phone - accuracy["map50_95"], abs=2e-3)
    assert abs(checkpoint - float_phone) > 0.1  # the two references differ: the test can tell which was used
