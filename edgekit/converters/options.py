"""One options object for a conversion, built once by the CLI or the Python API.

Conversion-wide fields sit on :class:`ConvertOptions`; what only one family reads is in
:class:`SourceOptions`; what only one backend reads is in that backend's own ``Options`` dataclass,
kept in ``backends`` by name. :meth:`ConvertOptions.create` routes flat keyword arguments (the CLI's
flags, ``convert_many(..., opset=18, phone=True)``) to the dataclass that owns them, so every option is
written out once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekit.checks import image_size
from edgekit.converters.backends import BACKENDS, PRECISIONS
from edgekit.converters.calibration import DEFAULT_SIZE as DEFAULT_CALIB_SIZE
from edgekit.converters.families import SourceOptions
from edgekit.errors import EdgekitError

# flat names that differ from the owning dataclass's field name
ALIASES = {"coreml_nms": ("coreml", "nms")}


@dataclass
class ConvertOptions:
    """Everything one `edgekit convert` needs besides the checkpoint."""

    formats: list[str] = field(default_factory=lambda: ["onnx"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    imgsz: tuple[int, int] | None = None  # None: the checkpoint's training size, else 640 (SourceModel.input_size)
    out_dir: Path | None = None  # None: next to the checkpoint (the current folder for an architecture name)
    calib: str | Path | None = None  # INT8 calibration: image folder, YOLO dataset yaml or COCO json
    calib_size: int = DEFAULT_CALIB_SIZE
    names: list[str] | None = None  # replaces the class names
    nms_in_graph: bool = False  # NMS inside the graph (ONNX, OpenVINO): detections [1, K, 6] + count
    max_drop: float | None = None  # INT8: the mAP50-95 points it may lose on labelled data (layers kept in float)
    val_data: str | Path | None = None  # INT8: labelled held-out data the drop is measured on (yaml / COCO json)
    source: SourceOptions = field(default_factory=SourceOptions)
    backends: dict[str, Any] = field(default_factory=dict)  # backend name -> its Options instance

    def backend(self, name: str) -> Any:
        """The options of backend `name` (its defaults when none were given)."""
        return self.backends.get(name) or BACKENDS[name].Options()

    @classmethod
    def create(
        cls,
        formats: str | Sequence[str] = "onnx",
        precisions: str | Sequence[str] = "fp32",
        imgsz: int | Sequence[int] | None = None,
        out_dir: str | Path | None = None,
        **flat: Any,
    ) -> ConvertOptions:
        """Options from flat arguments: `formats` / `precisions` as lists or comma-separated text (``all``
        for every one), `imgsz` as one int or (height, width) (None: the checkpoint's training size, else 640),
        the output folder, and any field of ConvertOptions,
        SourceOptions or a backend's Options by its name (``topk``, ``opset``, ``phone``, ``coreml_nms``...).

        Raises EdgekitError for unknown formats or precisions and TypeError for an unknown option name.
        """
        owners = _owners()
        top = {f.name for f in fields(cls)} - {"source", "backends", "formats", "precisions", "imgsz", "out_dir"}
        own: dict[str, Any] = {}
        source: dict[str, Any] = {}
        per_backend: dict[str, dict[str, Any]] = {}
        for key, value in flat.items():
            if key in top:
                own[key] = value
            elif key in owners:
                owner, name = owners[key]
                (source if owner == "source" else per_backend.setdefault(owner, {}))[name] = value
            else:
                raise TypeError(f"unknown conversion option '{key}'")
        return cls(
            formats=_split(formats, tuple(BACKENDS), "format"),
            precisions=_split(precisions, PRECISIONS, "precision"),
            imgsz=image_size(imgsz) if imgsz is not None else None,
            out_dir=Path(out_dir) if out_dir is not None else None,
            source=SourceOptions(**source),
            backends={name: BACKENDS[name].Options(**values) for name, values in per_backend.items()},
            **own,
        )


def option_names() -> list[str]:
    """Every keyword option :meth:`ConvertOptions.create` accepts besides formats, precisions, imgsz, out_dir."""
    positional = ("source", "backends", "formats", "precisions", "imgsz", "out_dir")
    top = [f.name for f in fields(ConvertOptions) if f.name not in positional]
    return top + list(_owners())


def _owners() -> dict[str, tuple[str, str]]:
    owners = {f.name: ("source", f.name) for f in fields(SourceOptions)}
    for name, backend in BACKENDS.items():
        if dataclasses.is_dataclass(backend.Options):
            for f in fields(backend.Options):
                owners.setdefault(f.name, (name, f.name))
    for alias, target in ALIASES.items():
        owners[alias] = target
    return owners


def _split(value: str | Sequence[str], known: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if items == ["all"]:
        return list(known)
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise EdgekitError(f"unknown {what} {', '.join(unknown) or '(none)'} (choose from {', '.join(known)}, or all)")
    return list(dict.fromkeys(items))
