"""Opening what a user names on the converter side: a path refused at once when it cannot be a checkpoint
(before torch's slow import), the extras converting needs, the input size a checkpoint runs at when none is
given, and a detector for a model file or a checkpoint. Imports no torch itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import require
from edgekit.fileio import check_checkpoint_file
from edgekit.runtimes.engine import is_artifact
from edgekit.runtimes.settings import EngineSettings


def check_converter_side(spec: str | Path | None = None) -> None:
    """Refuse a path that cannot be a checkpoint (checked without torch), then raise EdgekitError naming the
    extra to install when torch or onnx is missing. A model file or an architecture name passes the first check
    (a model file gets its own message from the converters: it is already a model)."""
    if spec is not None:
        path = Path(spec)
        if (path.suffix or "/" in str(spec) or path.exists()) and not path.is_dir() and not is_artifact(spec):
            check_checkpoint_file(spec)
    require("torch", "convert")
    require("onnx", "convert")


def open_detector(
    model: str | Path,
    *,
    imgsz: Sequence[int] | None = None,
    backend: str | None = None,
    threads: int | None = None,
    settings: EngineSettings | None = None,
    names: list[str] | None = None,
    arch: str | None = None,
) -> Any:
    """A detector for `model`: a model file runs on its engine (`imgsz` only for models without a fixed
    size; `backend`, `threads`, `settings` as `edgekit.load` takes them), a checkpoint in torch as the converters'
    reference, at `imgsz` or the size it was trained at (`arch`: DAMO-YOLO's variant of a state_dict;
    `threads`: torch's intra-op threads, for the whole process). Either is called on a BGR image and returns
    Detections; `names` replaces the class names. Raises EdgekitError for a file that cannot be opened."""
    if is_artifact(model):
        from edgekit.runtimes.detector import load

        return load(model, backend=backend, threads=threads, settings=settings, imgsz=imgsz, names=names)
    check_converter_side(model)
    from edgekit.converters.source_detector import open_source_detector

    return open_source_detector(model, imgsz, threads=threads, names=names, arch=arch)
