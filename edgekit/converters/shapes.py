"""The demo ShapesNet as a convertible family: a plain state_dict, exported like every other model."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgekit.converters.fuse import reparameterize
from edgekit.converters.source import SourceModel
from edgekit.eval.shapes import CLASSES
from edgekit.meta import DecodeSpec
from edgekit.models.checkpoint import Checkpoint, load_strict
from edgekit.models.shapes import ShapesNet


def looks_like_shapes(weights: dict) -> bool:
    return "stem.conv.weight" in weights and "lat8.0.conv.weight" in weights and "cls.1.weight" in weights


def source_model(model: ShapesNet, path: Path | None = None) -> SourceModel:
    model = model.float().eval()
    model.export = True

    def reference(x: torch.Tensor) -> dict[str, torch.Tensor]:
        boxes, scores = model(x)
        return {"boxes": boxes, "scores": scores}

    def make_deploy() -> ShapesNet:
        deploy = copy.deepcopy(model)
        _, bns = reparameterize(deploy)
        source.notes[:] = [f"folded {bns} BatchNorms"]
        return deploy.eval()

    source = SourceModel(
        family="edgekit-shapes",
        variant="shapesnet",
        classes=list(CLASSES),
        training=model,
        reference=reference,
        make_deploy=make_deploy,
        stride=32,
        decode=DecodeSpec(method="nms", conf=0.25, iou=0.45, max_det=100),
        path=path,
    )
    return source


def from_checkpoint(ckpt: Checkpoint, weights: dict) -> SourceModel:
    model = ShapesNet(len(CLASSES))
    load_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, ckpt.path.name)
    return source_model(model, ckpt.path)


def convert_shapes(weights: str | Path, out: str | Path, imgsz: int = 320):
    """Convert trained ShapesNet weights into the ONNX artifact `out` (verified; used for the demo model)."""
    from edgekit.converters.convert import convert

    out = Path(out)
    result = convert(weights, imgsz=imgsz, out_dir=out.parent)
    if result.path != out:
        result.path.replace(out)
    return result.verification
