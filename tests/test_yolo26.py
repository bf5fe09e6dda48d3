"""Ultralytics checkpoints: YOLO26 end-to-end (three output modes) and the GELAN-only yolov9t."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import edgekit
from edgekit import assets
from edgekit.converters.convert import convert
from edgekit.converters.families.ultralytics import to_deploy
from edgekit.errors import EdgekitError
from edgekit.models import ultralytics as U
from edgekit.models.checkpoint import load_checkpoint
from edgekit.models.facts import count_gflops, count_params
from edgekit.runtimes.decode import decode_topk
from edgekit.runtimes.ort import OnnxRuntimeEngine

from checkpoints import random_ultralytics, write_ultralytics_checkpoint

# fused (deploy) figures, 640x640: params M / GFLOPs (Ultralytics 8.4.190 model.info() after fuse(), which counts
# the attention's matrix products)
FUSED = {"n": (2.409, 5.48), "s": (9.496, 20.933), "m": (20.411, 68.426), "l": (24.807, 86.796), "x": (55.726, 194.418)}
TRAINING_PARAMS = {"n": 2572280, "s": 10009784, "m": 21896248, "l": 26299704, "x": 58993368}  # yolo26.yaml


@pytest.fixture(scope="module")
def yolo26n(tmp_path_factory):
    return write_ultralytics_checkpoint(
        random_ultralytics("yolo26n", nc=6), tmp_path_factory.mktemp("c") / "yolo26n.pt"
    )


@pytest.fixture(scope="module")
def converted(yolo26n, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return {
        "graph": convert(yolo26n, imgsz=256, out_dir=out),
        "runtime": convert(yolo26n, imgsz=256, topk="runtime", out_dir=out),
        "nms": convert(yolo26n, imgsz=256, nms=True, out_dir=out),
    }


def test_ultralytics_checkpoint_reads_without_ultralytics(yolo26n):
    ckpt = load_checkpoint(yolo26n)
    assert "ultralytics.nn.modules.block.C3k2" in ckpt.globals and "ultralytics" not in sys.modules
    model = U.from_checkpoint(ckpt)
    assert model.end2end and model.variant == "yolo26n" and model.names == [f"cls{i}" for i in range(6)]


@pytest.mark.parametrize("scale", list("nsmlx"))
def test_params_of_every_scale(scale):
    model = U.build(f"yolo26{scale}")
    assert count_params(model) == TRAINING_PARAMS[scale]
    deploy, _ = to_deploy(model.eval(), "e2e")
    assert count_params(deploy) / 1e6 == pytest.approx(FUSED[scale][0], rel=5e-3)


@pytest.mark.parametrize("scale", ["n", "s"])
def test_gflops_small_scales(scale):
    deploy, _ = to_deploy(U.build(f"yolo26{scale}").eval(), "e2e")
    assert count_gflops(deploy, 640) == pytest.approx(FUSED[scale][1], rel=5e-3)


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["m", "l", "x"])
def test_gflops_large_scales(scale):
    deploy, _ = to_deploy(U.build(f"yolo26{scale}").eval(), "e2e")
    assert count_gflops(deploy, 640) == pytest.approx(FUSED[scale][1], rel=5e-3)


@pytest.mark.convert
def test_three_output_modes_verify_and_carry_their_contract(converted):
    graph, runtime, nms = converted["graph"], converted["runtime"], converted["nms"]
    assert [p.path.name for p in (graph, runtime, nms)] == ["yolo26n.onnx", "yolo26n-topk.onnx", "yolo26n-nms.onnx"]
    for result in converted.values():
        assert result.verification.passed
    assert graph.verification.max_abs["topk_unmatched"] == 0
    metas = {k: edgekit.load(r.path).meta for k, r in converted.items()}
    assert metas["graph"].outputs.kind == "detections" and metas["graph"].decode.method == "none"
    assert metas["runtime"].outputs.names == ["boxes", "scores"] and metas["runtime"].decode.method == "topk"
    assert metas["nms"].decode.method == "nms" and metas["nms"].decode.iou == 0.7
    shapes = {
        o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in onnx.load(str(graph.path)).graph.output
    }
    assert shapes == {"detections": [1, 300, 6]}


@pytest.mark.convert
def test_runtime_mode_graph_has_no_selection_ops(converted):
    ops = {n.op_type for n in onnx.load(str(converted["runtime"].path)).graph.node}
    assert not ops & {"TopK", "ArgMax", "GatherElements", "GatherND"}
    assert "TopK" in {n.op_type for n in onnx.load(str(converted["graph"].path)).graph.node}


@pytest.mark.convert
def test_in_graph_topk_equals_numpy_topk(converted):
    x = np.random.default_rng(3).uniform(0, 1, (1, 3, 256, 256)).astype(np.float32)  # no ties: no flat regions
    rows = OnnxRuntimeEngine(converted["graph"].path).run({"images": x})["detections"][0]
    out = OnnxRuntimeEngine(converted["runtime"].path).run({"images": x})
    found = decode_topk(out["boxes"][0], out["scores"][0], conf=0.0, max_det=300)
    assert len(found.confidence) == len(rows) == 300
    order = np.argsort(-rows[:, 4], kind="stable")
    np.testing.assert_allclose(found.confidence, rows[order, 4], atol=1e-6)
    np.testing.assert_array_equal(found.class_id, rows[order, 5].astype(np.int64))
    np.testing.assert_allclose(found.xyxy, rows[order, :4], atol=1e-6)


@pytest.mark.convert
def test_predict_decodes_every_mode(converted):
    results = {}
    for mode, result in converted.items():
        detector = edgekit.load(result.path)
        found = detector(assets.shapes_image(), conf=0.3)
        assert found.image_size == (480, 640) and len(found) > 0
        results[mode] = found
    graph, runtime = results["graph"], results["runtime"]
    assert len(graph) == len(runtime)
    np.testing.assert_allclose(np.sort(graph.confidence), np.sort(runtime.confidence), atol=1e-5)


@pytest.mark.convert
def test_cli_convert_and_predict(yolo26n, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekit.cli",
            "convert",
            str(yolo26n),
            "--imgsz",
            "192",
            "--topk",
            "runtime",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "one-to-many (training) branch removed" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekit.cli",
            "predict",
            str(tmp_path / "yolo26n-topk.onnx"),
            str(assets.shapes_image()),
            "--json",
            "--conf",
            "0.3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["detections"]) > 0


@pytest.mark.convert
def test_ncnn_gets_the_runtime_topk_form_by_default(yolo26n, tmp_path, capsys):
    from edgekit.cli import main

    code = main(["convert", str(yolo26n), "--to", "ncnn", "--imgsz", "160", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    said = [line for line in out.splitlines() if "in-graph top-k" in line]
    assert len(said) == 1 and said[0].startswith("top-k    ncnn cannot hold yolo26n's") and "every" not in said[0]
    assert [p.name for p in tmp_path.iterdir()] == ["yolo26n-topk_ncnn"]
    assert edgekit.load(tmp_path / "yolo26n-topk_ncnn").meta.decode.method == "topk"


@pytest.mark.convert
def test_ultralytics_yolov9t(tmp_path):
    assert count_params(to_deploy(U.build("yolov9t").eval(), "o2m")[0]) / 1e6 == pytest.approx(2.094, rel=5e-3)
    model = random_ultralytics("yolov9t", nc=4)
    ckpt = write_ultralytics_checkpoint(model, tmp_path / "yolov9t.pt")
    result = convert(ckpt, imgsz=192, out_dir=tmp_path)
    assert result.verification.passed and result.path.name == "yolov9t.onnx"
    meta = edgekit.load(result.path).meta
    assert meta.family == "ultralytics-yolov9" and meta.decode.method == "nms" and meta.classes[0] == "cls0"


def test_other_tasks_are_refused_by_name(tmp_path):
    model = random_ultralytics("yolo26n", nc=2)
    path = write_ultralytics_checkpoint(model, tmp_path / "seg.pt", task_class="SegmentationModel")
    with pytest.raises(EdgekitError, match="an Ultralytics segment model, which edgekit does not convert"):
        convert(path, imgsz=128, out_dir=tmp_path / "o")
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "convert", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Ultralytics segment model" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_yaml_and_weights_mismatches(tmp_path):
    model = random_ultralytics("yolo26n", nc=3)
    model.yaml["nc"] = 5
    path = write_ultralytics_checkpoint(model, tmp_path / "nc.pt")
    with pytest.raises(EdgekitError, match="class-count mismatch: the yaml says nc=5"):
        convert(path, imgsz=128, out_dir=tmp_path)
    model = random_ultralytics("yolo26n", nc=3)
    model.yaml["backbone"][0][2] = "MagicConv"
    path = write_ultralytics_checkpoint(model, tmp_path / "magic.pt")
    with pytest.raises(EdgekitError, match="unknown block 'MagicConv' in layer 0"):
        convert(path, imgsz=128, out_dir=tmp_path)


def test_deploy_equals_training_branches():
    model = random_ultralytics("yolo26s", nc=5)
    x = torch.rand(1, 3, 128, 160)
    for mode in ("o2o", "o2m"):
        deploy, _ = to_deploy(model, mode)
        model.head.mode = mode
        with torch.no_grad():
            expected, got = model(x), deploy(x)
        for a, b in zip(expected, got):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    model.head.mode = "reference"


@pytest.mark.parametrize("options", [{}, {"topk": "runtime"}, {"nms": True}], ids=["graph", "runtime", "nms"])
@pytest.mark.convert
def test_yolo26s_every_mode(tmp_path, options):
    path = write_ultralytics_checkpoint(random_ultralytics("yolo26s", nc=7, seed=3), tmp_path / "yolo26s.pt")
    result = convert(path, imgsz=160, out_dir=tmp_path, **options)
    assert result.verification.passed
    assert len(edgekit.load(result.path)(assets.shapes_image(), conf=0.2)) > 0
