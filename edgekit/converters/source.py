"""What every converter hands to the shared export path: the source model and how to deploy it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgekit.checks import check_stride, image_size
from edgekit.meta import DecodeSpec, InputSpec, OutputSpec

DEFAULT_IMGSZ = 640  # the input size of a source that records no training size


@dataclass
class SourceModel:
    """A loaded model in training form, with what it takes to export and verify it.

    `reference` maps a batch of network inputs to the contract outputs computed by the *training form*
    (independently of the export head), so verification compares the artifact with the source itself.
    """

    family: str
    variant: str
    classes: list[str]
    training: nn.Module
    reference: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    make_deploy: Callable[[], nn.Module]
    reference_deploy: Callable[[], nn.Module] | None = None  # the reference's own deploy form, if it differs
    stride: int = 32
    input: InputSpec = field(default_factory=InputSpec)
    outputs: OutputSpec = field(default_factory=OutputSpec)
    decode: DecodeSpec = field(default_factory=DecodeSpec)
    path: Path | None = None
    tag: str = ""  # names a non-default output form in the file name (e.g. yolo26n-nms.onnx)
    notes: list[str] = field(default_factory=list)  # what the deploy transform did, for the log
    random_weights: bool = False  # built from an architecture name: seeded random weights
    train_imgsz: tuple[tuple[int, int], str] | None = None  # (height, width) trained at, and the key saying so
    head: str = ""  # the output head exported, for models with more than one (e.g. "one-to-many + NMS")
    default_head: str = ""  # the head the checkpoint itself runs, which a conversion picks unless asked
    head_note: str = ""  # which head was chosen and why, for the log

    @classmethod
    def of(cls, model: nn.Module, **fields) -> SourceModel:
        """A SourceModel of a YOLO-layout torch `model` (its ``names``, ``stride`` tensor of the head's strides
        and ``channels``): classes, training form, stride and input channels from the model, `fields` as given."""
        return cls(classes=list(model.names), training=model, stride=int(model.stride.max()),
                   input=InputSpec(channels=model.channels), **fields)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.variant

    def input_size(self, imgsz: int | Sequence[int] | None = None) -> tuple[tuple[int, int], str]:
        """The network input (height, width) in pixels, and a line saying which size and why.

        `imgsz` (one int, or height and width) wins when given; else the size the checkpoint records it was
        trained at, rounded up to a multiple of the stride (as Ultralytics' own val and export do); else 640.
        Raises EdgekitError when the size is not positive multiples of the model's stride.
        """
        if imgsz is not None:
            size, why = image_size(imgsz), "as asked (--imgsz, or a --device profile)"
        elif self.train_imgsz is not None:
            (height, width), key = self.train_imgsz
            size = (-(-height // self.stride) * self.stride, -(-width // self.stride) * self.stride)
            recorded = f"{height}" if height == width else f"{height}x{width}"
            rounded = f", rounded up to the stride {self.stride}" if size != (height, width) else ""
            why = f"the size {self.name} was trained at (its {key} {recorded}{rounded}; --imgsz to change)"
        else:
            what = f"{self.path.name} records" if self.path else "an architecture name has"
            what += " no training size"
            size, why = (DEFAULT_IMGSZ, DEFAULT_IMGSZ), f"the default ({what})"
        check_stride(size, self.stride)
        return size, f"{size[0]}x{size[1]}: {why}"

    def choices(self, size_note: str) -> list[str]:
        """Log lines: the input size (`size_note`, from :meth:`input_size`) and the output head, and why."""
        return [f"imgsz    {size_note}"] + ([f"head     {self.head_note}"] if self.head_note else [])


def boxes_scores_from_packed(packed: torch.Tensor, width: int, height: int) -> dict[str, torch.Tensor]:
    """The contract's outputs from a reference-style [B, 4+C, A] prediction (cx, cy, w, h in pixels)."""
    cx, cy, w, h = packed[:, 0], packed[:, 1], packed[:, 2], packed[:, 3]
    boxes = torch.stack(((cx - w / 2) / width, (cy - h / 2) / height, (cx + w / 2) / width, (cy + h / 2) / height), -1)
    return {"boxes": boxes, "scores": packed[:, 4:].transpose(1, 2)}
