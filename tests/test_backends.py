"""Backends and precisions: ONNX, OpenVINO, TFLite, CoreML, NCNN in FP32/FP16/INT8, each run by its own engine."""

import json
import subprocess
import sys

import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.converters.calibration import calibration_images
from edgekit.converters.convert import convert_many
from edgekit.converters.verify import detection_rows, match_rows
from edgekit.errors import EdgekitError
from edgekit.eval.synthetic import write_yolo_dataset
from edgekit.images import read_image
from edgekit.runtimes.litert import LiteRTEngine

from blocked import run_cli
from checkpoints import family_checkpoints

IMGSZ = 160


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    return write_yolo_dataset(tmp_path_factory.mktemp("calib"), 24, seed=3)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return family_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def fp32_artifacts(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32")
    found = {}
    for family, ckpt in checkpoints.items():
        options = {"topk": "runtime"} if family == "yolo26" else {}
        results = convert_many(
            ckpt, "onnx,openvino,tflite,coreml,ncnn", "fp32", IMGSZ, out / family, **options
        )
        assert all(r.ok for r in results), [r.error for r in results]
        found[family] = {r.format: r for r in results}
    return found


@pytest.mark.parametrize("family", ["yolov9", "yolo26", "damo"])
@pytest.mark.convert
def test_same_detections_on_every_engine(fp32_artifacts, family):
    results = fp32_artifacts[family]
    # the .onnx file on ONNX Runtime (this machine's profile would run it on OpenVINO: tests/test_settings.py)
    detectors = {fmt: edgekit.load(results[fmt].path, backend="onnxruntime" if fmt == "onnx" else None)
                 for fmt in ("onnx", "openvino", "tflite", "ncnn")}
    assert {f: d.engine.backend for f, d in detectors.items()} == {
        "onnx": "onnxruntime",
        "openvino": "openvino",
        "tflite": "litert",
        "ncnn": "ncnn",
    }
    image = read_image(assets.shapes_image())

    def raw(detector):  # the network outputs for the same preprocessed image
        from edgekit.runtimes.preprocess import preprocess

        x, _ = preprocess(image, detector.meta.input, detector.meta.imgsz)
        return detector.engine.run({detector.meta.input.name: x})

    reference_raw = raw(detectors["onnx"])
    reference = detection_rows(detectors["onnx"](image, conf=0.3))
    assert len(reference) > 0
    for fmt in ("openvino", "tflite", "ncnn"):
        got = raw(detectors[fmt])
        for name in ("boxes", "scores"):
            np.testing.assert_allclose(got[name], reference_raw[name], atol=1e-4, err_msg=f"{fmt} {name}")
        other = detection_rows(detectors[fmt](image, conf=0.3))
        boxes, scores, unmatched = match_rows(reference, other, 1e-4)  # order-free: equal scores may swap
        exact = int((boxes <= 0.05).sum())
        # random weights score uniform regions (the letterbox padding) identically, so NMS may keep either of
        # two tied boxes (one row in twenty, or one: NCNN kept a box 32 px beside ONNX's, same score, on gelan-t);
        # everything else must agree exactly
        allowed = max(1, 0.05 * len(reference))
        assert len(reference) - exact <= allowed and unmatched <= allowed, (fmt, exact, len(reference))
        assert scores.max() <= 1e-4, fmt


@pytest.mark.convert
def test_tflite_takes_nhwc_and_carries_metadata(fp32_artifacts):
    path = fp32_artifacts["yolov9"]["tflite"].path
    engine = LiteRTEngine(path)
    assert engine.inputs[0].name == "images" and engine.inputs[0].shape == (1, IMGSZ, IMGSZ, 3)
    assert [o.name for o in engine.outputs] == ["boxes", "scores"]
    meta = edgekit.load(path).meta
    assert meta.input.layout == "NHWC" and meta.verification["passed"] and meta.family == "yolov9"


@pytest.mark.convert
def test_openvino_folder_and_rt_info(fp32_artifacts):
    folder = fp32_artifacts["damo"]["openvino"].path
    assert folder.is_dir() and {p.name for p in folder.iterdir()} == {"model.xml", "model.bin"}
    assert edgekit.load(folder / "model.xml").meta == edgekit.load(folder).meta
    assert edgekit.load(folder).meta.family == "damo-yolo"


@pytest.mark.convert
def test_coreml_structure_metadata(fp32_artifacts):
    from edgekit.converters.backends.coreml import spec_of

    path = fp32_artifacts["yolo26"]["coreml"].path
    spec = spec_of(path)
    assert [i.name for i in spec.description.input] == ["images"]
    assert [o.name for o in spec.description.output] == ["boxes", "scores"]
    meta = json.loads(dict(spec.description.metadata.userDefined)["edgekit"])
    assert meta["decode"]["method"] == "topk" and meta["verification"]["passed"]
    if sys.platform != "darwin":
        with pytest.raises(EdgekitError, match="run only on macOS"):
            edgekit.load(path)(assets.shapes_image())


@pytest.mark.convert
def test_coreml_vision_pipeline(checkpoints, tmp_path):
    from edgekit.converters.backends.coreml import spec_of

    results = convert_many(checkpoints["yolov9"], "coreml", "fp32", IMGSZ, tmp_path, coreml_nms=True)
    assert results[0].ok, results[0].error
    spec = spec_of(results[0].path)
    assert [m.WhichOneof("Type") for m in spec.pipeline.models] == ["mlProgram", "nonMaximumSuppression"]
    nms = spec.pipeline.models[1].nonMaximumSuppression
    assert nms.pickTop.perClass and list(nms.stringClassLabels.vector)[:5] == [f"cls{i}" for i in range(5)]
    assert [o.name for o in spec.description.output] == ["confidence", "coordinates"]
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"


@pytest.mark.parametrize(
    "family", [pytest.param("yolov9", marks=pytest.mark.slow), "yolo26", pytest.param("damo", marks=pytest.mark.slow)]
)
@pytest.mark.convert
def test_int8_keeps_detecting_on_every_backend(checkpoints, calib, tmp_path, family):
    options = {"topk": "runtime"} if family == "yolo26" else {}
    results = convert_many(
        checkpoints[family],
        "onnx,openvino,tflite",
        "int8",
        IMGSZ,
        tmp_path,
        calib=calib,
        calib_size=24,
        **options,
    )
    for result in results:
        assert result.ok, f"{result.format}: {result.error}"
        figures = result.verification.extra
        assert figures["map50"] >= 0.5 and figures["reference_detections"] > 0, (result.format, figures)
        detector = edgekit.load(result.path)
        assert detector.meta.precision == "int8" and len(detector(assets.shapes_image(), conf=0.3)) > 0


@pytest.mark.convert
def test_int8_tflite_is_integer_with_quant_params_in_metadata(checkpoints, calib, tmp_path):
    result = convert_many(
        checkpoints["yolov9"], "tflite", "int8", IMGSZ, tmp_path, calib=calib, calib_size=24
    )[0]
    assert result.ok, result.error
    engine = LiteRTEngine(result.path)
    meta = edgekit.load(result.path).meta
    assert (
        engine.inputs[0].dtype == "int8" and meta.input.dtype == "int8" and meta.input.quant == engine.inputs[0].quant
    )
    assert set(meta.outputs.quant) == {"boxes", "scores"}  # separate scales: boxes never share with scores
    assert meta.outputs.quant["boxes"] != meta.outputs.quant["scores"]


@pytest.mark.slow
def test_end_to_end_yolo26_int8_in_graph_topk_too(checkpoints, calib, tmp_path):
    results = convert_many(
        checkpoints["yolo26"], "onnx,openvino", "int8", IMGSZ, tmp_path, calib=calib, calib_size=24
    )
    for result in results:
        assert result.ok, result.error
        assert edgekit.load(result.path).meta.outputs.kind == "detections"
        assert result.verification.extra["map50"] >= 0.5


@pytest.mark.slow
def test_fp16_everywhere(checkpoints, tmp_path):
    results = convert_many(checkpoints["damo"], "onnx,openvino,tflite,coreml", "fp16", IMGSZ, tmp_path)
    for result in results:
        assert result.ok, result.error
        assert result.verification.max_abs["boxes"] <= 1e-2
    sizes = {r.format: r.size_mb for r in results}
    fp32 = convert_many(checkpoints["damo"], "onnx", "fp32", IMGSZ, tmp_path)[0]
    assert sizes["onnx"] < 0.6 * fp32.size_mb


@pytest.mark.convert
def test_nms_in_graph(checkpoints, tmp_path):
    results = convert_many(checkpoints["yolov9"], "onnx,openvino", "fp32", IMGSZ, tmp_path, nms_in_graph=True)
    plain = edgekit.load(
        convert_many(checkpoints["yolov9"], "onnx", "fp32", IMGSZ, tmp_path / "plain")[0].path
    )
    expected = plain(assets.shapes_image())
    for result in results:
        assert result.ok, result.error
        assert result.verification.max_abs["nms_unmatched"] == 0
        detector = edgekit.load(result.path)
        assert detector.meta.outputs.names == ["detections", "count"]
        found = detector(assets.shapes_image())
        assert len(found) == len(expected)
        np.testing.assert_allclose(np.sort(found.confidence), np.sort(expected.confidence), atol=1e-4)


@pytest.mark.slow
def test_uint8_input_tflite(checkpoints, tmp_path):
    result = convert_many(checkpoints["yolov9"], "tflite", "fp32", IMGSZ, tmp_path, uint8_input=True)[0]
    assert result.ok, result.error
    detector = edgekit.load(result.path)
    assert detector.meta.input.dtype == "uint8" and detector.engine.inputs[0].dtype == "uint8"
    assert len(detector(assets.shapes_image(), conf=0.3)) > 0


def test_calibration_sources(calib, tmp_path, caplog):
    images = sorted((calib.parent / "images").iterdir())
    coco = {"images": [{"id": i, "file_name": p.name} for i, p in enumerate(images)], "annotations": []}
    (calib.parent / "images" / "instances.json").write_text(json.dumps(coco))
    caplog.set_level("WARNING", logger="edgekit")
    for spec in (calib.parent / "images", calib, calib.parent / "images" / "instances.json"):
        found = calibration_images(spec, 10)
        assert len(found) == 10 and all(p.is_file() for p in found)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3 and "only 10 calibration images" in warnings[0]
    with pytest.raises(EdgekitError, match="calibration data not found"):
        calibration_images(tmp_path / "nothing")


@pytest.mark.convert
def test_int8_needs_calibration(checkpoints, tmp_path):
    with pytest.raises(EdgekitError, match="INT8 needs calibration images"):
        convert_many(checkpoints["yolov9"], "onnx", "int8", IMGSZ, tmp_path)


@pytest.mark.convert
def test_missing_backend_fails_only_that_target(checkpoints, tmp_path):
    proc = run_cli(
        ["convert", checkpoints["yolov9"], "--to", "onnx,openvino", "--imgsz", IMGSZ, "--out", tmp_path],
        ["openvino"],
        timeout=600,
    )
    assert proc.returncode == 1
    assert "pip install 'edgekit[openvino]'" in proc.stdout and "Traceback" not in proc.stderr
    assert "1 of 2 target(s) failed (openvino fp32)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gelan-t.onnx"]


@pytest.mark.slow
def test_cli_table(checkpoints, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekit.cli",
            "convert",
            str(checkpoints["damo"]),
            "--to",
            "onnx,tflite",
            "--precision",
            "fp32,fp16",
            "--imgsz",
            str(IMGSZ),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("format    precision") :].splitlines()
    assert len(table) == 5 and all(" ok" in row for row in table[1:])
    assert {p.name for p in tmp_path.iterdir()} == {
        "damo-t.onnx",
        "damo-t-fp16.onnx",
        "damo-t.tflite",
        "damo-t-fp16.tflite",
    }


def test_fx_decode_region_stops_at_weighted_layers_but_not_the_dfl():
    """The PT2E decode region: what lies after the last weighted convolutions, the DFL's fixed-weight
    convolution included (named by its module, as torch.export records it)."""
    import torch

    from edgekit.converters.backends.decode_region import fx_decode_region

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cv = torch.nn.Conv2d(3, 4, 1)
            self.dfl = torch.nn.Conv2d(4, 1, 1, bias=False)

        def forward(self, x):
            y = self.cv(x)
            return self.dfl(y.softmax(1)) * 2.0, y.sigmoid()

    graph = torch.export.export(Head().eval(), (torch.zeros(1, 3, 8, 8),)).module().graph
    region = fx_decode_region(graph)
    kinds = {str(n.target).split(".")[1] for n in graph.nodes if n.name in region}
    assert {"softmax", "mul", "sigmoid", "conv2d"} <= kinds  # the conv2d in the region is the DFL's
    weighted = [n.name for n in graph.nodes if str(n.target).startswith("aten.conv2d")]
    assert len(weighted) == 2 and weighted[0] not in region and weighted[1] in region


@pytest.mark.convert
def test_coreml_int8_is_w8a8_calibrated_here(tmp_path):
    """CoreML INT8 is W8A8 on Linux: activations quantized (quantize/dequantize ops) as calibrated in torch
    (PT2E, ExecuTorch's CoreMLQuantizer), int8 weights, the decode region in float; the quantized program it was
    converted from keeps the demo detector's detections."""
    from edgekit.converters.backends.coreml import W8A8_OPS, W8A8_WEIGHT_OPS, mil_op_types, spec_of

    pytest.importorskip("executorch")
    calib = write_yolo_dataset(tmp_path / "calib", 32, seed=2)
    result = convert_many(assets.demo_checkpoint(), "coreml", "int8", 320, tmp_path / "out", calib=calib,
                          calib_size=32)[0]
    assert result.ok, result.error
    spec = spec_of(result.path)
    types = mil_op_types(spec)
    assert W8A8_OPS <= types and types & W8A8_WEIGHT_OPS
    block = spec.mlProgram.functions["main"].block_specializations[spec.mlProgram.functions["main"].opset]
    producer = {out.name: op.type for op in block.operations for out in op.outputs}
    assert all(producer[name] not in W8A8_OPS for name in block.outputs)  # the decode region ends in float ops
    figures = result.verification
    assert figures.passed and "W8A8" in (figures.skipped or "") and figures.extra["reference_detections"] > 0
    assert figures.extra["map50"] >= 0.9, figures.extra
