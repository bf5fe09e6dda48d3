"""Files shipped inside the package: the embedded default model and its sample image, and the small ShapesNet demo.

The default model is the project's trained YOLO26n fixture (tests/fixtures/families/yolo26n.pt, trained by
scripts/train_families.py on procedural scenes of six shapes) converted to ONNX at 320; it knows those six
shapes and nothing else (see README).
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def default_model() -> Path:
    """The embedded default detector: the trained YOLO26n fixture as ONNX FP32, 320x320, six shape classes."""
    return HERE / "yolo26n.onnx"


def sample_image() -> Path:
    """A procedural scene (not from the training or val images) where the default model reports six detections
    (two of them on one cross: its NMS-free one-to-one head keeps both)."""
    return HERE / "scene.jpg"


def shapes_model() -> Path:
    """ShapesNet, the project's 0.78 M-parameter demo detector of circles, squares and triangles (ONNX)."""
    return HERE / "shapes.onnx"


def shapes_image() -> Path:
    """A sample image of circles, squares and triangles for ShapesNet."""
    return HERE / "shapes.jpg"


def demo_checkpoint() -> Path:
    """ShapesNet's trained weights (a plain state_dict): a small real checkpoint that converts in seconds."""
    return HERE / "shapes.pt"
