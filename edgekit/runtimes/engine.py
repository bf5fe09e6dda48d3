"""The engine interface every backend implements, and choosing a backend from a model file."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtimes.settings import EngineSettings, engine_settings, resolve_shared


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, shape (ints, or names/None for dynamic axes) and numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str
    quant: tuple[float, int] | None = None  # (scale, zero_point) of an integer tensor

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)


class Engine(ABC):
    """A loaded model file that runs named numpy inputs on one backend."""

    backend: str = ""
    idle_switch: bool = True  # whether the engine's idle workers spin or sleep as `settings.shared` says

    def __init__(self, path: str | Path, threads: int | None = None, settings: EngineSettings | None = None):
        self.path = Path(path)
        self.settings = engine_settings(settings, threads)
        if self.settings.shared is None:  # decided now, from the machine's load, where it changes anything
            self.settings = resolve_shared(self.settings) if self.idle_switch else replace(self.settings, shared=False)
        self.threads = self.settings.threads

    _inputs: list[TensorSpec]  # each engine reads its tensors once, when it opens the model
    _outputs: list[TensorSpec]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs (the Detector looks them up every frame: kept, not rebuilt)."""
        return self._outputs

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; returns every output by name."""

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model without copies where the engine allows it (the Detector's per-frame call).

        Inputs may be read in place and outputs may be the engine's own buffers: they hold this call's values
        only until the next call. Engines that cannot share memory return what :meth:`run` returns.
        """
        return self.run(feeds)

    @abstractmethod
    def metadata(self) -> dict[str, str]:
        """The key/value metadata stored in the file (the `edgekit` key holds edgekit's)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


# backend name -> (module, class, file suffixes it opens; a suffix starting with "_" names a folder artifact)
BACKENDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "onnxruntime": ("edgekit.runtimes.ort", "OnnxRuntimeEngine", (".onnx",)),
    "openvino": ("edgekit.runtimes.openvino", "OpenVINOEngine", (".xml", ".onnx")),  # reads ONNX as it is
    "litert": ("edgekit.runtimes.litert", "LiteRTEngine", (".tflite",)),
    "coreml": ("edgekit.runtimes.coreml", "CoreMLEngine", (".mlpackage", ".mlmodel")),
    "ncnn": ("edgekit.runtimes.ncnn", "NCNNEngine", ("_ncnn", ".param")),
    "executorch": ("edgekit.runtimes.executorch", "ExecuTorchEngine", (".pte",)),
}


def backend_for(path: str | Path) -> str:
    """The backend that opens this file, by its type."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() and suffix not in (".mlpackage",):
        for name, (_, _, suffixes) in BACKENDS.items():
            if any(s.startswith("_") and path.name.endswith(s) for s in suffixes):
                return name
        if len(list(path.glob("*.xml"))) == 1:
            return "openvino"  # an IR folder (model.xml + model.bin), whatever its name
    for name, (_, _, suffixes) in BACKENDS.items():
        if suffix in suffixes:
            return name
    suffixes = dict.fromkeys(s for _, _, sx in BACKENDS.values() for s in sx)
    known = (", ".join(s for s in suffixes if not s.startswith("_")) + " files, or "
             + " / ".join(["_openvino"] + [s for s in suffixes if s.startswith("_")]) + " folders")
    raise EdgekitError(f"{path}: unknown model type '{suffix or path.name}' (edgekit runs {known})")


def backends_opening(path: str | Path) -> list[str]:
    """Every registered backend whose file types include `path`'s, the one :func:`backend_for` picks first (an
    .onnx file: ONNX Runtime, then OpenVINO, which reads ONNX as it is); whether each is installed is for
    :func:`open_engine` to find out. Raises EdgekitError for a file type no engine opens."""
    native = backend_for(path)
    path = Path(path)
    others = [name for name, (_, _, suffixes) in BACKENDS.items()
              if name != native and path.suffix.lower() in suffixes]
    return [native, *others]


def is_artifact(path: str | Path) -> bool:
    """True for a model file or folder that a runtime engine opens (by its type, as :func:`backend_for`
    decides): the one answer to "is this an artifact or a checkpoint?" for every caller."""
    try:
        backend_for(path)
    except EdgekitError:
        return False
    return True


def existing_model(path: str | Path) -> Path:
    """`path` as a Path; EdgekitError ("model not found: PATH") where nothing is there."""
    path = Path(path)
    if not path.exists():
        raise EdgekitError(f"model not found: {path}")
    return path


def open_engine(
    path: str | Path,
    backend: str | None = None,
    threads: int | None = None,
    settings: EngineSettings | None = None,
) -> Engine:
    """Open a model file with the backend its type (or `backend`) names, with `settings` (threads, shared
    machine, FP16; an explicit `threads` wins over ``settings.threads``; an unset ``shared`` is decided from
    the machine's load now: :func:`~edgekit.runtimes.settings.resolve_shared`). Raises EdgekitError for a missing
    file or an unknown backend, and the engine's own EdgekitError for a file it cannot read."""
    path = existing_model(path)
    name = backend or backend_for(path)
    if name not in BACKENDS:
        raise EdgekitError(f"unknown backend '{name}' (available: {', '.join(BACKENDS)})")
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)(path, settings=engine_settings(settings, threads))
