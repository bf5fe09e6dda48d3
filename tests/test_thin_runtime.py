"""The device side imports and predicts with torch, onnx and the converters made unimportable."""

import json
import subprocess
import sys

import cv2
import onnx

import onnx_models as om

BLOCKER = """
import sys
BLOCKED = ("torch", "onnx", "onnxslim", "onnxscript", "coremltools", "litert_torch", "openvino.tools", "nncf",
           "tensorflow")
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocker())
"""

SCRIPT = (
    BLOCKER
    + """
import edgekit, edgekit.runtimes, edgekit.devices, edgekit.meta, edgekit.detections
from edgekit.cli import main
code = main(["predict", sys.argv[1], sys.argv[2], "--json"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxslim"))
print("HEAVY", heavy)
try:
    import torch  # noqa: F401
    print("TORCH-IMPORTED")
except ImportError:
    pass
sys.exit(code)
"""
)


def test_predict_without_torch_or_onnx(tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    image = tmp_path / "scene.jpg"
    cv2.imwrite(str(image), om.scene())
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model), str(image)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[0])["detections"][0]["label"] == "red"
    assert lines[1] == "HEAVY []" and "TORCH-IMPORTED" not in proc.stdout


def test_inspect_without_onnx_reads_the_graph(tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    script = BLOCKER + "from edgekit.cli import main\nsys.exit(main(['inspect', sys.argv[1], '--json']))"
    proc = subprocess.run([sys.executable, "-c", script, str(model)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ops = [node.op_type for node in onnx.load(str(model)).graph.node]
    assert json.loads(proc.stdout)["onnx"]["ops"] == {op: ops.count(op) for op in set(ops)}
