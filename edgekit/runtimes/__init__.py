"""How an artifact runs: engines per backend, preprocessing and decoding. Never imports torch or onnx."""

from edgekit.runtimes.detector import Detector, Timings, load
from edgekit.runtimes.engine import Engine, TensorSpec, open_engine

__all__ = ["Detector", "Engine", "TensorSpec", "Timings", "load", "open_engine"]
