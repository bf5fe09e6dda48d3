"""INT8 on the trained demo model: scores keep their calibration (no capped tail), the same --conf finds the
same objects, and the verification gate fails an artifact whose scores are squashed even when ranks survive."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import edgekit
from edgekit import assets
from edgekit.converters.backends.onnx import OnnxBackend
from edgekit.converters.context import ExportContext
from edgekit.converters.convert import convert_many, verification_images
from edgekit.converters.families import open_source
from edgekit.converters.verify import verify_agreement
from edgekit.eval.synthetic import render, sample_size, write_yolo_dataset
from edgekit.meta import ModelMeta
from edgekit.runtimes.ort import OnnxRuntimeEngine

IMGSZ = 320


@pytest.fixture(scope="module")
def held_out():
    rng = np.random.default_rng(123)
    return [render(rng, *sample_size(rng)).image for _ in range(30)]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    calib = write_yolo_dataset(root / "calib", 48, seed=5)
    results = convert_many(assets.demo_checkpoint(), "onnx,openvino,tflite", "fp32,int8", IMGSZ, root / "out",
                           calib=calib)
    assert all(r.ok for r in results), [r.error for r in results]
    return {(r.format, r.precision): r for r in results}


def top_scores(path, images):
    detector = edgekit.load(path)
    return np.array([max(detector(im, conf=0.01).confidence, default=0.0) for im in images])


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
@pytest.mark.convert
def test_int8_scores_keep_their_tail(artifacts, held_out, fmt):
    fp32 = top_scores(artifacts[(fmt, "fp32")].path, held_out)
    int8 = top_scores(artifacts[(fmt, "int8")].path, held_out)
    assert fp32.max() > 0.95  # a trained model: confident detections
    # a range calibrated by moving average clipped the demo's TFLite logits (max 0.965 against 0.985)
    assert abs(int8.max() - fp32.max()) <= 0.006
    assert np.abs(int8 - fp32).mean() <= 0.01
    verification = artifacts[(fmt, "int8")].verification
    assert verification.extra["map50_95"] >= 0.9 and verification.extra["conf_agreement"] >= 0.95
    assert verification.max_abs["score_max_diff"] <= 0.01


@pytest.mark.convert
def test_same_conf_finds_the_same_objects(artifacts, held_out):
    for fmt in ("onnx", "openvino", "tflite"):
        fp32, int8 = (edgekit.load(artifacts[(fmt, p)].path) for p in ("fp32", "int8"))
        counts = [(len(fp32(im, conf=0.6)), len(int8(im, conf=0.6))) for im in held_out]
        assert sum(a for a, _ in counts) > 30 and sum(abs(a - b) for a, b in counts) <= 2, (fmt, counts)


@pytest.mark.convert
def test_the_gate_fails_squashed_scores_whose_ranks_survive(tmp_path):
    source = open_source(assets.demo_checkpoint())
    meta = ModelMeta(source.family, source.variant, source.classes, (IMGSZ, IMGSZ), input=source.input,
                     outputs=source.outputs, decode=source.decode, stride=source.stride)
    ctx = ExportContext(source, source.make_deploy(), meta, verification_images(), tmp_path)
    path = tmp_path / "fp32.onnx"
    OnnxBackend(ctx).write("fp32", path)
    good = verify_agreement(ctx, OnnxRuntimeEngine(path), meta)
    assert good.passed and good.max_abs["score_max_diff"] < 0.01

    model = onnx.load(str(path))  # scores * 0.52: every rank kept, no score above 0.52
    graph = model.graph
    producer = next(n for n in graph.node if "scores" in n.output)
    producer.output[list(producer.output).index("scores")] = "scores_raw"
    graph.initializer.append(numpy_helper.from_array(np.array(0.52, np.float32), "squash"))
    graph.node.append(helper.make_node("Mul", ["scores_raw", "squash"], ["scores"], name="squash"))
    squashed_path = tmp_path / "squashed.onnx"
    onnx.save(model, str(squashed_path))
    squashed = verify_agreement(ctx, OnnxRuntimeEngine(squashed_path), meta)
    assert squashed.extra["map50_95"] > 0.9  # ranks alone would pass it
    assert squashed.max_abs["score_max_diff"] > 0.3
    figure = squashed.max_abs["score_max_diff"]
    assert not squashed.passed and squashed.failures() == f"score_max_diff {figure:.3g} > 0.1"


@pytest.mark.slow
def test_int8_on_the_trained_yolo26n_fixture_keeps_scores_and_accuracy(tmp_path):
    """Issue 15 on a trained family model: every INT8 backend's top scores within 0.05 of FP32's and detection
    agreement with FP32 at least 0.9 (mAP50-95); ONNX and OpenVINO within 1 mAP50-95 point of FP32 on the val
    split (plain TFLite INT8 loses ~1.7 to its int8 box outputs: --max-drop keeps them float, bench_accuracy)."""
    from pathlib import Path

    from edgekit.eval.procedural import write_dataset

    fixtures = Path(__file__).parent / "fixtures" / "families"
    calib = write_dataset(tmp_path / "calib", {"train": 100}, seed=0)
    results = convert_many(fixtures / "yolo26n.pt", "onnx,openvino,tflite", "fp32,int8", IMGSZ, tmp_path / "out",
                           calib=calib, topk="runtime", val_data=fixtures / "scenes" / "data.yaml")
    assert all(r.ok for r in results), [r.error for r in results]
    paths = {(r.format, r.precision): r.path for r in results}
    images = [cv2_read(p) for p in sorted((fixtures / "scenes" / "images" / "val").glob("*.jpg"))[:40]]
    for fmt in ("onnx", "openvino", "tflite"):
        fp32, int8 = top_scores(paths[fmt, "fp32"], images), top_scores(paths[fmt, "int8"], images)
        assert abs(fp32.max() - int8.max()) < 0.05 and abs(np.percentile(fp32, 90) - np.percentile(int8, 90)) < 0.05
        result = next(r for r in results if r.format == fmt and r.precision == "int8")
        assert result.verification.extra["map50_95"] >= 0.9, (fmt, result.verification.extra)
        assert fmt == "tflite" or result.accuracy["drop"] <= 1.0, (fmt, result.accuracy)


def cv2_read(path):
    import cv2

    return cv2.imread(str(path))
