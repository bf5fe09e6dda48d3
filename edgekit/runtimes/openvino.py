"""The OpenVINO engine: an IR (.xml + .bin, or the folder holding them) on the CPU plugin.

Metadata lives in the IR's ``rt_info`` under ``edgekit``. Inference precision is pinned to f32 by
default so results match the verified figures; pass ``precision_hint="bf16"`` on CPUs that have it.
Threads: the LATENCY hint (one stream, as many threads as the plugin finds cores for) unless ``threads``
sets ``INFERENCE_NUM_THREADS``; on a ``shared`` machine its threads are not pinned to cores
(``ENABLE_CPU_PINNING``), so the scheduler can move them off cores that other processes hold. It opens an
IR, or an .onnx file as it is (OpenVINO reads ONNX directly; the file's metadata is read as ONNX Runtime
reads it). Per frame, :meth:`OpenVINOEngine.infer` shares the input array with the
infer request and returns its output tensors without copies.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, first_line, require
from edgekit.limits import METADATA_BYTES, read_text
from edgekit.meta import KEY
from edgekit.runtimes.engine import Engine, TensorSpec
from edgekit.runtimes.settings import EngineSettings
from edgekit.yaml_subset import parse_simple_yaml

_DTYPES = {"f32": "float32", "f16": "float16", "u8": "uint8", "i8": "int8", "i32": "int32", "i64": "int64"}


def block_openvino_telemetry() -> None:
    """Keep OpenVINO (and NNCF) from sending usage telemetry: ``import openvino`` alone forks a process to post
    an event (openvino-telemetry's GA4 backend), which after JAX has started (litert-torch, in a conversion)
    risks a deadlock, and a detector on a device has no business phoning home. Both fall back to a no-op stub
    when ``openvino_telemetry`` cannot be imported; this makes it so, unless it was imported already."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None


def ir_file(path: Path) -> Path:
    """The .xml of an IR given the file or the folder that holds exactly one."""
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if len(found) != 1:
            raise EdgekitError(f"{path}: expected one OpenVINO .xml in the folder, found {len(found)}")
        return found[0]
    return path


class OpenVINOEngine(Engine):
    """Runs an OpenVINO IR with the CPU plugin (latency hint, configurable threads)."""

    backend = "openvino"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        precision_hint: str = "f32",
        settings: EngineSettings | None = None,
    ):
        super().__init__(path, threads, settings)
        threads = self.threads
        block_openvino_telemetry()
        ov = require("openvino", "openvino")
        xml = ir_file(self.path)
        if xml.suffix.lower() != ".onnx" and not xml.with_suffix(".bin").is_file():
            raise EdgekitError(f"{xml}: the weights file {xml.with_suffix('.bin').name} is missing")
        core = ov.Core()
        try:
            self.model = core.read_model(str(xml))
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision_hint}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            if self.settings.shared:
                config["ENABLE_CPU_PINNING"] = False
            self.compiled = core.compile_model(self.model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for unreadable IRs
            reason = first_line(exc, 200)
            raise EdgekitError(f"{xml}: not a loadable OpenVINO model ({reason})") from None
        self.request = self.compiled.create_infer_request()
        self._inputs = [self._spec(port, f"input{i}") for i, port in enumerate(self.compiled.inputs)]
        self._outputs = [self._spec(port, f"output{i}") for i, port in enumerate(self.compiled.outputs)]

    @staticmethod
    def _spec(port, fallback: str) -> TensorSpec:
        """The port's tensor name (a readable one before a "/..." node path); `fallback` (``output0``, as
        Ultralytics' ONNX exports name it) when the IR gives the port none."""
        names = port.get_names()
        preferred = sorted(n for n in names if not n.startswith("/")) or sorted(names) or [fallback]
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        kind = port.get_element_type().get_type_name()
        return TensorSpec(preferred[0], shape, _DTYPES.get(kind, kind))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ordered = [feeds[spec.name] for spec in self._inputs]
        results = self.request.infer(ordered)
        return {spec.name: np.asarray(results[port]) for spec, port in zip(self._outputs, self.compiled.outputs)}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run with the input shared (no copy into the request) and the outputs returned as views of the
        request's tensors, valid until the next call."""
        ordered = [np.ascontiguousarray(feeds[spec.name]) for spec in self._inputs]
        results = self.request.infer(ordered, share_inputs=True, share_outputs=True)
        return {spec.name: results[port] for spec, port in zip(self._outputs, self.compiled.outputs)}

    def metadata(self) -> dict[str, str]:
        """edgekit's metadata from rt_info; for an .onnx file, its metadata_props (which OpenVINO keeps in rt_info
        ``framework``); for an Ultralytics IR export, its ``metadata.yaml`` beside the .xml
        (names, stride, imgsz, task, end2end...), else the class labels it keeps in rt_info ``model_info``."""
        if self.model.has_rt_info([KEY]):
            return {KEY: self.model.get_rt_info([KEY]).astype(str)}
        if ir_file(self.path).suffix.lower() == ".onnx":  # the file's metadata_props, as ONNX Runtime gives them
            props = self.model.get_rt_info()["framework"] if self.model.has_rt_info(["framework"]) else {}
            return {key: value.astype(str) for key, value in props.items()}
        found: dict = {}
        yaml_file = ir_file(self.path).parent / "metadata.yaml"
        if yaml_file.is_file():
            found = parse_simple_yaml(read_text(yaml_file, METADATA_BYTES, "metadata", errors="replace"))
        elif self.model.has_rt_info(["model_info", "labels"]):
            labels = self.model.get_rt_info(["model_info", "labels"]).astype(str).split()
            found = {"names": dict(enumerate(labels)), "author": "Ultralytics (rt_info)", "task": "detect"}
        return found
