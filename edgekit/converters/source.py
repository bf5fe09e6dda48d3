"""What every converter hands to the shared export path: the source model and how to deploy it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgekit.meta import DecodeSpec, InputSpec, OutputSpec


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

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.variant


def boxes_scores_from_packed(packed: torch.Tensor, width: int, height: int) -> dict[str, torch.Tensor]:
    """The contract's outputs from a reference-style [B, 4+C, A] prediction (cx, cy, w, h in pixels)."""
    cx, cy, w, h = packed[:, 0], packed[:, 1], packed[:, 2], packed[:, 3]
    boxes = torch.stack(((cx - w / 2) / width, (cy - h / 2) / height, (cx + w / 2) / width, (cy + h / 2) / height), -1)
    return {"boxes": boxes, "scores": packed[:, 4:].transpose(1, 2)}
