"""The LiteRT (TFLite) engine: ai-edge-litert's Interpreter with XNNPACK, or tflite-runtime where that is
what the device has. Integer tensors report their (scale, zero_point) so the Detector can quantize the
input and dequantize the outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError, first_line
from edgekit.limits import METADATA_BYTES, literal, parse_json
from edgekit.logs import silenced
from edgekit.meta import KEY
from edgekit.runtimes.engine import Engine, TensorSpec
from edgekit.runtimes.settings import EngineSettings
from edgekit.runtimes.tflite_file import read_tflite_metadata


def interpreter_class():
    """ai-edge-litert's Interpreter, else tflite-runtime's."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise MissingExtraError(
            "no TFLite runtime is installed; install it with: pip install 'edgekit[litert]'"
        ) from None


class LiteRTEngine(Engine):
    """Runs a .tflite file (XNNPACK on the CPU, configurable threads). LiteRT's Python API has no switch for
    idle workers, so ``settings.shared`` changes nothing here."""

    backend = "litert"
    idle_switch = False  # no spin / sleep setting to pass

    def __init__(self, path: str | Path, threads: int | None = None, settings: EngineSettings | None = None):
        super().__init__(path, threads, settings)
        threads = self.threads
        Interpreter = interpreter_class()
        try:
            with silenced():  # the native "Created TensorFlow Lite XNNPACK delegate" line
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = first_line(exc, 200)
            raise EdgekitError(f"{self.path}: not a loadable TFLite model ({reason})") from None
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self._inputs = [self._spec(d) for d in self._in]
        self._outputs = [self._spec(d) for d in self._out]

    @staticmethod
    def _spec(detail) -> TensorSpec:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        quant = (float(scale), int(zero_point)) if scale else None
        shape = tuple(int(d) if d > 0 else None for d in detail.get("shape_signature", detail["shape"]))
        return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]).name, quant)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for detail in self._in:
            value = feeds[detail["name"]]
            if tuple(value.shape) != tuple(detail["shape"]):
                self.interpreter.resize_tensor_input(detail["index"], value.shape)
                self.interpreter.allocate_tensors()
            self.interpreter.set_tensor(detail["index"], value)
        self.interpreter.invoke()
        return {d["name"]: self.interpreter.get_tensor(d["index"]) for d in self._out}

    def metadata(self) -> dict[str, str]:
        """The file's text metadata entries (edgekit's JSON under ``edgekit``); for an Ultralytics export
        without them, the ``metadata.json`` Ultralytics appends to the file as a zip archive."""
        found = read_tflite_metadata(self.path)
        if KEY not in found:
            found.update(appended_metadata(self.path))
        return found


def appended_metadata(path: Path) -> dict:
    """The metadata Ultralytics appends to its .tflite exports as a zip archive: ``metadata.json`` (its first
    member, a Python literal, in older releases); {} when there is none, or when the member is larger than
    METADATA_BYTES (checked before it is inflated) or not a readable document."""
    import zipfile
    import zlib

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            member = "metadata.json" if "metadata.json" in names else (names[0] if names else None)
            if member is None or archive.getinfo(member).file_size > METADATA_BYTES:
                return {}
            raw = archive.read(member)
            data = parse_json(raw, "metadata.json") if member == "metadata.json" else literal(raw.decode())
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, EdgekitError):
        return {}
    return data if isinstance(data, dict) else {}
