"""The ONNX Runtime engine (CPU, full graph optimization, configurable intra-op threads).

Threads: intra-op threads default to ONNX Runtime's choice (one per physical core); inter-op parallelism
stays off (sequential execution: a detector is one chain of ops); ``threads`` sets the intra-op count, e.g.
to leave a core to a camera loop. Idle worker threads spin-wait between operators (ONNX Runtime's own
default) unless the settings say the machine is ``shared``: a worker that sleeps wakes late for every
operator, which costs a detector with the cores to itself, while spinning workers take the cores from
other busy processes (``session.intra_op.allow_spinning``; docs/benchmarks.md, Engine settings).
Per frame, :meth:`OnnxRuntimeEngine.infer` binds the input array and preallocated output arrays with an
``IOBinding``, so ONNX Runtime reads and writes numpy memory directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, first_line, require
from edgekit.runtimes.engine import Engine, TensorSpec
from edgekit.runtimes.settings import EngineSettings

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


_NUMPY = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int8": np.int8, "int64": np.int64}


class OnnxRuntimeEngine(Engine):
    """Runs an .onnx file with onnxruntime's CPU execution provider."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, settings: EngineSettings | None = None):
        super().__init__(path, threads, settings)
        threads = self.threads
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if self.settings.shared else "1")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            reason = first_line(exc, 200)
            raise EdgekitError(f"{self.path}: not a loadable ONNX model ({reason})") from None
        self._inputs = [self._spec(a) for a in self.session.get_inputs()]
        self._outputs = [self._spec(a) for a in self.session.get_outputs()]
        self._binding = self.session.io_binding()
        self._bound: dict[str, np.ndarray] | None = None

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
        return TensorSpec(arg.name, shape, _DTYPES.get(arg.type, arg.type))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._outputs]
        return dict(zip(names, self.session.run(names, feeds)))

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run through an IOBinding: inputs read in place, outputs written into arrays reused every call
        (static output shapes), valid until the next call. Dynamic outputs fall back to :meth:`run`."""
        if any(o.is_dynamic for o in self._outputs) or any(o.dtype not in _NUMPY for o in self._outputs):
            return self.run(feeds)
        if self._bound is None:
            self._bound = {o.name: np.empty(o.shape, _NUMPY[o.dtype]) for o in self._outputs}
            for name, array in self._bound.items():
                self._binding.bind_output(name, "cpu", 0, array.dtype, array.shape, array.ctypes.data)
        for name, value in feeds.items():
            self._binding.bind_cpu_input(name, np.ascontiguousarray(value))
        self.session.run_with_iobinding(self._binding)
        return dict(self._bound)

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)
