"""The device side runs without the converter side: predict and inspect succeed with torch, onnx and the other
converter packages unimportable, and an ordinary run (nothing blocked) does not import them either."""

import json

import cv2
import onnx

import onnx_models as om
from blocked import CONVERTER_SIDE, imported, run_cli


def test_predict_without_torch_or_onnx(tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    image = tmp_path / "scene.jpg"
    cv2.imwrite(str(image), om.scene())
    proc = run_cli(["predict", model, image, "--json"], CONVERTER_SIDE)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["detections"][0]["label"] == "red"


def test_predict_does_not_import_the_converter_side_where_it_is_installed(tmp_path):
    """A guarded import (`try: import torch`) would pass the blocked run above; here torch is importable."""
    model = om.save_with_meta(tmp_path / "m.onnx")
    image = tmp_path / "scene.jpg"
    cv2.imwrite(str(image), om.scene())
    modules = tmp_path / "modules.json"
    proc = run_cli(["predict", model, image, "--json", "--backend", "onnxruntime"], modules_file=modules)
    assert proc.returncode == 0, proc.stderr
    assert imported(modules, ["onnxruntime"])  # the run really went through the engine
    assert imported(modules, CONVERTER_SIDE) == []


def test_inspect_without_onnx_reads_the_graph(tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    proc = run_cli(["inspect", model, "--json"], CONVERTER_SIDE)
    assert proc.returncode == 0, proc.stderr
    ops = [node.op_type for node in onnx.load(str(model)).graph.node]
    assert json.loads(proc.stdout)["onnx"]["ops"] == {op: ops.count(op) for op in set(ops)}
