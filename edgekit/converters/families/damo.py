"""DAMO-YOLO to deploy form: collapse every RepConv, fold BatchNorm and the head's Scale, and fold the
reference's 0..255 input scale into the first convolution so the artifact takes 0..1 like every other.

Preprocessing is recorded as the reference does it. Since v0.3.0 (2023-03-17) its train and test
transforms stretch the image to the input size (``keep_ratio: False``), RGB, 0..255, no mean/std;
earlier releases kept the aspect ratio (floor-rounded) and zero-padded at the bottom and right, which
``keep_ratio=True`` records instead.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgekit.converters.families.base import Family, SourceOptions, state_dict_of
from edgekit.converters.source import SourceModel
from edgekit.meta import DecodeSpec, InputSpec, Letterbox
from edgekit.models import damo as D
from edgekit.models.checkpoint import Checkpoint
from edgekit.models.damo_blocks import DAMOYOLO, RepConv
from edgekit.models.damo_configs import CONFIGS
from edgekit.models.fuse import reparameterize


def first_conv(model: DAMOYOLO) -> torch.nn.Conv2d:
    stem = model.backbone.block_list[0] if model.backbone.kind == "res" else model.backbone.csp_stage[0]
    return stem.conv.conv


def to_deploy(model: DAMOYOLO) -> tuple[DAMOYOLO, list[str]]:
    """The export-form copy taking 0..1 input, and a line per transform."""
    deploy = copy.deepcopy(model)
    with torch.no_grad():
        conv = first_conv(deploy)
        if conv.bias is not None:  # the reference's stem conv has none; scaling would then not be exact
            raise RuntimeError("the first convolution has a bias; cannot fold the input scale")
        conv.weight.mul_(255.0)
    repconvs = sum(isinstance(m, RepConv) for m in deploy.modules())
    _, bns = reparameterize(deploy)
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.modules()):
        raise RuntimeError("a BatchNorm was left unfolded")
    deploy.head.export = True
    notes = [
        f"re-parameterized {repconvs} RepConv blocks, folded {bns} BatchNorms and the head's Scales",
        "input scale x255 folded into the first convolution: the artifact takes RGB 0..1",
    ]
    return deploy.eval(), notes


def reference_deploy(model: DAMOYOLO) -> DAMOYOLO:
    """The model as the reference's own deploy step leaves it: RepConvs collapsed, BatchNorms kept."""
    deploy = copy.deepcopy(model)
    for module in deploy.modules():
        if isinstance(module, RepConv):
            module.reparameterize()
    return deploy.eval()


def source_model(
    model: DAMOYOLO, variant: str, path: Path | None = None, keep_ratio: bool = False, names: list[str] | None = None
) -> SourceModel:
    """Wrap a DAMO-YOLO model (training form, eval mode) for the shared export path."""
    model = model.float().eval()
    num_classes = model.head.num_classes

    def reference(x: torch.Tensor) -> dict[str, torch.Tensor]:
        scores, boxes = model(x * 255.0)  # the reference network takes 0..255
        h, w = x.shape[2], x.shape[3]
        scale = torch.tensor([w, h, w, h], dtype=boxes.dtype)
        return {"boxes": boxes / scale, "scores": scores}

    def make_deploy() -> DAMOYOLO:
        deploy, notes = to_deploy(model)
        source.notes[:] = notes
        return deploy

    letterbox = Letterbox(align="topleft", pad_value=0, keep_ratio=keep_ratio, rounding="floor")
    source = SourceModel(
        family="damo-yolo",
        variant=variant,
        classes=list(names)
        if names
        else (list(D.COCO) if num_classes == 80 else [f"class{i}" for i in range(num_classes)]),
        training=model,
        reference=reference,
        make_deploy=make_deploy,
        reference_deploy=lambda: reference_deploy(model),
        stride=max(model.head.strides),
        input=InputSpec(letterbox=letterbox),
        decode=DecodeSpec(method="nms", conf=0.25, iou=0.7, max_det=300, multi_label=True),
        path=path,
    )
    return source


def from_checkpoint(ckpt: Checkpoint, arch: str | None = None, keep_ratio: bool = False) -> SourceModel:
    model, variant = D.from_checkpoint(ckpt, arch)
    return source_model(model, variant, ckpt.path, keep_ratio)


def from_arch(name: str, keep_ratio: bool = False) -> SourceModel:
    return source_model(D.build(name).eval(), name, None, keep_ratio)


def recognises(ckpt: Checkpoint, options: SourceOptions) -> bool:
    """A state_dict (top level or under ``model``, DDP prefix allowed) with DAMO-YOLO's head and RepGFPN keys,
    or any state_dict when a DAMO-YOLO variant is named with ``arch``."""
    state = state_dict_of(ckpt)
    return state is not None and (D.looks_like_damo(state) or options.arch in CONFIGS)


def load(ckpt: Checkpoint, options: SourceOptions) -> SourceModel:
    return from_checkpoint(ckpt, options.arch, options.keep_ratio)


FAMILY = Family(
    name="damo-yolo",
    recognises=recognises,
    load=load,
    archs=tuple(CONFIGS),
    build=lambda name, o: from_arch(name, o.keep_ratio),
)
