"""The demo ShapesNet as a convertible family: a plain state_dict, exported like every other model."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgekit.converters.families.base import Family, state_dict_of
from edgekit.converters.source import SourceModel
from edgekit.eval.synthetic import CLASSES
from edgekit.meta import DecodeSpec
from edgekit.models.checkpoint import Checkpoint, load_strict
from edgekit.models.fuse import reparameterize
from edgekit.models.shapesnet import ShapesNet


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


def recognises(ckpt: Checkpoint, options: object) -> bool:
    state = state_dict_of(ckpt)
    return state is not None and looks_like_shapes(state)


FAMILY = Family(
    name="edgekit-shapes",
    recognises=recognises,
    load=lambda ckpt, options: from_checkpoint(ckpt, state_dict_of(ckpt)),
)
