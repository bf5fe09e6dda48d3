"""The backends, one module or package per format, registered in one table.

Adding a backend: write ``backends/NAME.py`` (or a package) with a :class:`Backend` subclass, add one
line to ``BACKENDS``, its runtime engine in ``edgekit/runtimes/`` and its extra in pyproject.toml.
"""

from __future__ import annotations

from edgekit.converters.backends.base import PRECISIONS, Backend, NoOptions
from edgekit.converters.backends.coreml import CoreMLBackend
from edgekit.converters.backends.executorch import ExecuTorchBackend
from edgekit.converters.backends.ncnn import NCNNBackend
from edgekit.converters.backends.onnx import OnnxBackend
from edgekit.converters.backends.openvino import OpenVINOBackend
from edgekit.converters.backends.tflite import TFLiteBackend

BACKENDS: dict[str, type[Backend]] = {
    "onnx": OnnxBackend,
    "openvino": OpenVINOBackend,
    "tflite": TFLiteBackend,
    "coreml": CoreMLBackend,
    "ncnn": NCNNBackend,
    "executorch": ExecuTorchBackend,
}

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "NoOptions"]
