"""The interface every backend implements: one format, everything about it.

A backend turns the deploy model of an :class:`ExportContext` into one artifact per precision: it writes
the file (or folder) at a temporary path, verifies it with its own runtime engine, and stores the
verification in the metadata; the shared flow around it (temporary path, atomic rename, the result
table) is in :mod:`edgekit.converters.convert`. Options that only one backend understands live in that
backend's own dataclass (``Options``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgekit.converters.context import ExportContext
from edgekit.converters.verify import Verification, verify_agreement, verify_elementwise, verify_nms
from edgekit.meta import ModelMeta

PRECISIONS = ("fp32", "fp16", "int8")  # what `convert --precision` offers (meta.PRECISIONS is what files may say)


@dataclass(frozen=True)
class NoOptions:
    """A backend without options of its own."""


class Backend(ABC):
    """One artifact format. Subclasses set the class attributes and implement ``write``, ``engine`` and
    ``set_metadata``; ``verify`` has a default that fits formats running the contract's outputs."""

    name: ClassVar[str] = ""  # the --to name
    extra: ClassVar[str] = ""  # the pip extra that installs what it needs to convert
    suffix: ClassVar[str] = ""  # file suffix, or folder suffix for directory artifacts
    directory: ClassVar[bool] = False  # the artifact is a folder
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS  # what it offers; others are skipped in multi-precision runs
    graph_topk: ClassVar[bool] = True  # holds an end-to-end model's in-graph top-k (TopK and gather layers)
    Options: ClassVar[type] = NoOptions

    def __init__(self, ctx: ExportContext, options: object | None = None):
        self.ctx = ctx
        self.options = options if options is not None else self.Options()

    @classmethod
    def artifact_name(cls, stem: str, precision: str) -> str:
        """The file or folder name: ``STEM[-PRECISION]SUFFIX`` (FP32 has no tag)."""
        tag = "" if precision == "fp32" else f"-{precision}"
        return f"{stem}{tag}{cls.suffix}"

    @abstractmethod
    def write(self, precision: str, tmp: Path) -> ModelMeta:
        """Write the artifact for `precision` at `tmp`; return its metadata (without verification)."""

    @abstractmethod
    def engine(self, path: Path):
        """The runtime engine that runs the artifact at `path` (edgekit.runtimes)."""

    def verify(self, tmp: Path, meta: ModelMeta, precision: str) -> Verification:
        """Element-wise against the source (FP32/FP16), detection agreement where thresholds sit inside
        the file (INT8, FP16 with in-graph NMS), NMS rows for in-graph NMS."""
        engine = self.engine(tmp)
        nms_in_graph = meta.outputs.kind == "detections" and self.ctx.source_meta.outputs.kind == "boxes_scores"
        if precision == "int8" or (nms_in_graph and precision == "fp16"):
            return verify_agreement(self.ctx, engine, meta)
        if nms_in_graph:
            return verify_nms(self.ctx, engine, meta)
        return verify_elementwise(self.ctx, engine, meta, precision)

    def accuracy_reference(self) -> float:
        """mAP50-95 points an INT8 artifact's drop (and --max-drop) is measured against: the FP32 source's on
        the accuracy data, unless the format runs the model differently in float too (TFLite phone files)."""
        return self.ctx.reference_points()

    def fp32_engine(self) -> tuple[object, ModelMeta] | None:
        """An engine running this backend's FP32 form of the model, and its metadata (for the speed an INT8 file
        gains over it); None when the backend cannot offer one."""
        return None

    @abstractmethod
    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        """Store `meta` (now with its verification) in the artifact at `tmp`."""
