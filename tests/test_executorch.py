"""ExecuTorch: NAME[-int8].pte programs lowered to XNNPACK, FP32 equal to the source for the three families, INT8
(PT2E, the decode region in float) within a tolerance of FP32's mAP on a trained fixture, the metadata as the
program's `edgekit` method, the engine, and what a device needs to run a .pte (torch: ExecuTorch's Python
runtime links it)."""

import json
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.converters.backends.decode_region import fx_decode_region
from edgekit.converters.backends.executorch.export import export_program, quantize_module
from edgekit.converters.convert import convert_many
from edgekit.converters.families import open_source
from edgekit.errors import EdgekitError
from edgekit.eval.procedural import write_dataset
from edgekit.images import read_image
from edgekit.runtimes.executorch import METHOD, ExecuTorchEngine

from blocked import CONVERTER_SIDE, imported, run_cli
from checkpoints import family_checkpoints

IMGSZ = 128
TRAINED = Path(__file__).parent / "fixtures" / "families" / "yolov9-t.pt"
TRAINED_IMGSZ = 160
INT8_TOLERANCE = 2.0  # mAP50-95 points INT8 may lose against FP32 on the 24 rendered val scenes (no --max-drop)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return family_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The trained YOLOv9-t fixture as FP32 and INT8 programs, calibrated on rendered train scenes; the INT8 drop
    measured on rendered val scenes (the labelled --calib's val split)."""
    root = tmp_path_factory.mktemp("trained")
    data = write_dataset(root / "data", {"train": 48, "val": 24}, seed=3)
    results = convert_many(TRAINED, "executorch", "fp32,int8", TRAINED_IMGSZ, root / "out", calib=data)
    assert all(r.ok for r in results), [r.error for r in results]
    return {r.precision: r for r in results}


@pytest.mark.parametrize("family", ["yolov9", "yolo26", "damo"])
@pytest.mark.convert
def test_fp32_program_equals_the_source(checkpoints, tmp_path, family):
    result = convert_many(checkpoints[family], "executorch", "fp32", IMGSZ, tmp_path)[0]
    assert result.ok, result.error
    assert result.path == tmp_path / f"{checkpoints[family].stem}.pte"
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path.name]
    verification = result.verification
    assert verification.passed and verification.backend == "executorch"
    assert all(verification.max_abs[name] <= (1e-3 if name == "boxes" else 1e-4) for name in verification.max_abs)
    detector = edgekit.load(result.path)
    assert detector.engine.backend == "executorch" and detector.meta.precision == "fp32"
    assert detector.meta.verification["passed"]  # written into the program after the check
    assert [t.name for t in detector.engine.inputs] == ["images"]
    assert detector.engine.inputs[0].shape == (1, 3, IMGSZ, IMGSZ)
    assert [t.name for t in detector.engine.outputs] == detector.meta.outputs.names
    kind = "detections" if family == "yolo26" else "boxes_scores"  # YOLO26: its top-k inside the program
    assert detector.meta.outputs.kind == kind


@pytest.mark.convert
def test_int8_program_keeps_the_trained_fixtures_accuracy(trained):
    fp32, int8 = trained["fp32"], trained["int8"]
    assert int8.path.name == "yolov9-t-int8.pte" and fp32.path.name == "yolov9-t.pte"
    assert int8.verification.passed and int8.verification.backend == "executorch"
    assert int8.accuracy["reference_map50_95"] > 20  # a trained model on its own kind of scenes (25.9 at 160)
    assert int8.accuracy["drop"] <= INT8_TOLERANCE, int8.accuracy
    assert int8.path.stat().st_size < 0.5 * fp32.path.stat().st_size  # int8 weights
    meta = edgekit.load(int8.path).meta
    assert meta.precision == "int8" and meta.verification["passed"]


@pytest.mark.convert
def test_int8_leaves_the_decode_region_in_float():
    deploy = open_source(TRAINED).make_deploy()
    sample = np.random.default_rng(0).random((1, 3, TRAINED_IMGSZ, TRAINED_IMGSZ), dtype=np.float32)
    import torch

    graph = export_program(deploy, torch.from_numpy(sample)).module().graph
    region = fx_decode_region(graph)
    convs = {n.name for n in graph.nodes if "conv" in str(n.target)}
    assert region and convs - region and (region & convs)  # the DFL convolution belongs to the region
    quantized = quantize_module(deploy, torch.from_numpy(sample), [sample])
    quantized_outputs = {
        node.args[0].name for node in quantized.graph.nodes
        if "quantize_per" in str(node.target) and "dequantize" not in str(node.target)
    }
    assert quantized_outputs - region and not quantized_outputs & region, quantized_outputs & region


@pytest.mark.convert
def test_engine_reads_names_and_metadata_from_the_program(trained, tmp_path):
    engine = ExecuTorchEngine(trained["fp32"].path, threads=1)
    document = json.loads(engine.metadata()[METHOD])
    assert document["precision"] == "fp32" and document["verification"]["backend"] == "executorch"
    assert [t.name for t in engine.outputs] == ["boxes", "scores"]
    assert engine.outputs[1].shape[-1] == 6 and engine.outputs[0].dtype == "float32"
    x = np.zeros((1, 3, TRAINED_IMGSZ, TRAINED_IMGSZ), np.float32)
    out = engine.run({"images": x})
    assert out["boxes"].shape == engine.outputs[0].shape and out["scores"].shape == engine.outputs[1].shape
    broken = tmp_path / "broken.pte"
    broken.write_bytes(trained["fp32"].path.read_bytes()[:4096])
    with pytest.raises(EdgekitError, match="not a loadable ExecuTorch program"):
        ExecuTorchEngine(broken)


@pytest.mark.convert
def test_predict_needs_torch_and_executorch_only(trained, tmp_path):
    """A device running .pte files needs torch and onnx: ExecuTorch's Python runtime links libtorch and imports
    onnx (and tensorflow where it is installed). Everything else on the converter side stays unimportable, and
    without them the run fails in one line that says so."""
    image = assets_image()
    modules = tmp_path / "modules.json"
    others = [p for p in CONVERTER_SIDE if p not in ("torch", "onnx", "tensorflow")]
    proc = run_cli(["predict", trained["fp32"].path, image, "--json"], others, modules_file=modules, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["detections"]
    assert imported(modules, ["executorch.runtime"]) and imported(modules, ["edgekit.converters"]) == []
    without = run_cli(["predict", trained["fp32"].path, image], CONVERTER_SIDE, timeout=300)
    assert without.returncode != 0
    assert "needs torch" in without.stderr and "Traceback" not in without.stderr
    assert len(without.stderr.strip().splitlines()) == 1, without.stderr


def assets_image() -> Path:
    scenes = TRAINED.parent / "scenes" / "images" / "val"
    image = sorted(scenes.glob("*.jpg"))[0]
    assert read_image(image) is not None
    return image
