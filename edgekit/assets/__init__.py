"""Files shipped inside the package: the embedded demo model and a sample image."""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def default_model() -> Path:
    """The embedded demo detector (see README: what it is and how it was made)."""
    return HERE / "shapes.onnx"


def demo_checkpoint() -> Path:
    """The demo detector's trained weights (a plain state_dict): a small real checkpoint to convert."""
    return HERE / "shapes.pt"


def sample_image() -> Path:
    """A sample image the demo model can detect objects in."""
    return HERE / "shapes.jpg"
