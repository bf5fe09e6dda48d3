"""The ExecuTorch engine: a .pte program run by ExecuTorch's runtime (``executorch.runtime``), its XNNPACK delegate
on the CPU.

ExecuTorch's Python runtime needs torch: its bindings link libtorch and take and return torch tensors (checked
on executorch 1.5.1 with torch made unimportable: ``import executorch.runtime`` fails). So on a device this engine
needs ``pip install 'edgekit[executorch]'`` with a CPU torch wheel; ExecuTorch's own deployment path on phones is
its C++ runtime (Android AAR, iOS framework), which reads the same .pte and needs no Python at all.

A program's inputs and outputs have no names: the engine names them as the edgekit metadata (the program's
``edgekit`` constant method, a JSON string) says, or ``input_N`` / ``output_N`` for a program without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError, first_line
from edgekit.limits import parse_json
from edgekit.logs import silenced
from edgekit.meta import KEY
from edgekit.runtimes.engine import Engine, TensorSpec
from edgekit.runtimes.settings import EngineSettings

METHOD = KEY  # the constant method that returns the edgekit metadata document
# ExecuTorch's ScalarType codes (runtime/core/portable_type/scalar_type.h) -> numpy dtype names
_DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
           11: "bool"}


def runtime_module():
    """``executorch.runtime``, or a one-line error: it is missing, or torch (which its bindings link) is."""
    try:
        import torch  # noqa: F401  (ExecuTorch's bindings load libtorch from it)
    except ImportError:
        raise MissingExtraError(
            "ExecuTorch's Python runtime needs torch (its bindings link libtorch); install both with: "
            "pip install 'edgekit[executorch]'"
        ) from None
    try:
        with silenced():
            import executorch.runtime
    except ImportError as exc:
        raise MissingExtraError(
            f"executorch is not installed ({exc}); install it with: pip install 'edgekit[executorch]'"
        ) from None
    return executorch.runtime


class ExecuTorchEngine(Engine):
    """Runs the ``forward`` method of a .pte file; ``threads`` sizes ExecuTorch's (process-wide) thread pool."""

    backend = "executorch"
    idle_switch = False  # no spin / sleep setting to pass

    def __init__(self, path: str | Path, threads: int | None = None, settings: EngineSettings | None = None):
        super().__init__(path, threads, settings)
        threads = self.threads
        runtime = runtime_module()
        try:
            with silenced():  # the native cpuinfo lines
                if threads:
                    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

                    _unsafe_reset_threadpool(int(threads))
                self.program = runtime.Runtime.get().load_program(self.path)
                self.method = self.program.load_method("forward")
        except (RuntimeError, ValueError) as exc:
            raise EdgekitError(f"{self.path}: not a loadable ExecuTorch program ({first_line(exc, 200)})") from None
        if self.method is None:
            raise EdgekitError(f"{self.path}: the ExecuTorch program has no 'forward' method")
        self._document = self._read_metadata()
        names = self._names()
        info = self.method.metadata
        self._inputs = [
            self._spec(name, info.input_tensor_meta(i)) for i, name in enumerate(names[0][: info.num_inputs()])
        ]
        self._outputs = [
            self._spec(name, info.output_tensor_meta(i)) for i, name in enumerate(names[1][: info.num_outputs()])
        ]

    def _read_metadata(self) -> str | None:
        if METHOD not in self.program.method_names:
            return None
        with silenced():
            values = self.program.load_method(METHOD).execute([])
        return values[0].rstrip() if values and isinstance(values[0], str) else None  # the slot's padding

    def _names(self) -> tuple[list[str], list[str]]:
        info = self.method.metadata
        inputs = [f"input_{i}" for i in range(info.num_inputs())]
        outputs = [f"output_{i}" for i in range(info.num_outputs())]
        if self._document is not None:
            try:
                doc = parse_json(self._document, "metadata")
                inputs[:1] = [doc["input"]["name"]]
                outputs[: len(doc["outputs"]["names"])] = doc["outputs"]["names"]
            except (EdgekitError, KeyError, TypeError):
                pass  # unreadable metadata: the Detector reports it when it reads the document itself
        return inputs, outputs

    @staticmethod
    def _spec(name: str, info) -> TensorSpec:
        return TensorSpec(name, tuple(int(d) for d in info.sizes()), _DTYPES.get(int(info.dtype()), "float32"))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])) for spec in self._inputs]
        try:
            values = self.method.execute(tensors)
        except RuntimeError as exc:
            raise EdgekitError(f"{self.path.name}: ExecuTorch could not run it ({first_line(exc, 200)})") from None
        return {spec.name: value.numpy() for spec, value in zip(self._outputs, values)}

    def metadata(self) -> dict[str, str]:
        return {} if self._document is None else {KEY: self._document}
