"""YOLOv9 / GELAN models built from their yaml dict (the one every official checkpoint carries).

``build(cfg)`` follows the reference's parse rules (width/depth multiples, channel bookkeeping, the
``from`` wiring); ``from_checkpoint`` reads an official checkpoint safely and loads its weights strictly.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models import yolov9_blocks as B
from edgekit.models.checkpoint import Checkpoint, Record, class_names, copy_batchnorm_eps, load_strict, state_dict
from edgekit.models.graph import LayerGraph, make_divisible, probe_strides, set_batchnorm_eps
from edgekit.models.yolov9_configs import CONFIGS

BLOCKS: dict[str, type[nn.Module]] = {
    "Conv": B.Conv,
    "AConv": B.AConv,
    "ADown": B.ADown,
    "ELAN1": B.ELAN1,
    "RepNCSPELAN4": B.RepNCSPELAN4,
    "RepNCSP": B.RepNCSP,
    "SPPELAN": B.SPPELAN,
    "CBLinear": B.CBLinear,
    "CBFuse": B.CBFuse,
    "Silence": B.Silence,
    "Concat": B.Concat,
    "nn.Upsample": nn.Upsample,
    "Upsample": nn.Upsample,
    "DDetect": B.DDetect,
    "DualDDetect": B.DualDDetect,
}
CHANNEL_BLOCKS = (B.Conv, B.AConv, B.ADown, B.ELAN1, B.RepNCSPELAN4, B.SPPELAN)
HEADS = (B.DDetect, B.DualDDetect)
ACTIVATIONS = {"SiLU": nn.SiLU, "ReLU": nn.ReLU, "LeakyReLU": nn.LeakyReLU, "Hardswish": nn.Hardswish, "Mish": nn.Mish}


def _activation(text: str) -> nn.Module:
    """Parse the yaml's `activation` (e.g. ``nn.LeakyReLU(0.1)``) without evaluating it."""
    match = re.fullmatch(r"\s*(?:nn\.)?(\w+)\(\s*([0-9.eE+-]*)\s*\)\s*", text)
    if not match or match.group(1) not in ACTIVATIONS:
        raise EdgekitError(f"unsupported activation in the model yaml: {text!r}")
    name, arg = match.groups()
    return ACTIVATIONS[name](float(arg)) if arg else ACTIVATIONS[name]()


@contextlib.contextmanager
def _default_activation(act: nn.Module | None) -> Iterator[None]:
    """Temporarily set the default activation of Conv and RepConvN while a model is built."""
    saved = B.Conv.default_act, B.RepConvN.default_act
    if act is not None:
        B.Conv.default_act = B.RepConvN.default_act = act
    try:
        yield
    finally:
        B.Conv.default_act, B.RepConvN.default_act = saved


def _arg(value: Any, nc: int, anchors: Any) -> Any:
    """Resolve the names the reference yaml uses inside layer arguments (``nc``, ``None``...)."""
    if isinstance(value, str):
        return {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}.get(value, value)
    return value


class YOLOv9(LayerGraph):
    """A YOLOv9/GELAN detection model; ``yaml`` is its architecture, ``names`` its class names."""

    family = "yolov9"

    def __init__(self, cfg: dict[str, Any], nc: int | None = None):
        cfg = copy.deepcopy(cfg)
        if nc is not None:
            cfg["nc"] = nc
        self_nc = int(cfg["nc"])
        act = _activation(cfg["activation"]) if cfg.get("activation") else None
        with _default_activation(act):
            layers = parse_layers(cfg, self_nc)
        super().__init__(layers)
        set_batchnorm_eps(self, 1e-3)  # as the reference trainers' initialize_weights does
        self.yaml = cfg
        self.nc = self_nc
        self.names = [str(i) for i in range(self_nc)]
        self.stride = probe_strides(self)

    @property
    def dual(self) -> bool:
        return isinstance(self.head, B.DualDDetect)

    def main_inputs(self) -> list[int]:
        """Layer indices feeding the main prediction branch of the head."""
        sources = self.head.sources
        return sources[len(sources) // 2 :] if self.dual else sources


def parse_layers(cfg: dict[str, Any], nc: int) -> list[nn.Module]:
    """Build the layers of a YOLOv9 yaml dict, as the reference's parse_model does."""
    try:
        rows = list(cfg["backbone"]) + list(cfg["head"])
        gd, gw = float(cfg.get("depth_multiple", 1.0)), float(cfg.get("width_multiple", 1.0))
    except (KeyError, TypeError) as exc:
        raise EdgekitError(f"the model yaml lacks {exc}: expected backbone, head, nc") from None
    anchors = cfg.get("anchors", 3)
    outs: list[Any] = []  # output channels per layer
    layers: list[nn.Module] = []

    def channels(index: int) -> Any:
        return (outs or [int(cfg.get("ch", 3))])[index]

    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise EdgekitError(f"layer {i} of the model yaml is not [from, repeats, block, args]: {row!r}")
        f, n, name, args = row
        block = BLOCKS.get(name)
        if block is None:
            raise EdgekitError(
                f"unknown block '{name}' in layer {i} of the model yaml (edgekit knows {', '.join(BLOCKS)})"
            )
        args = [_arg(a, nc, anchors) for a in args]
        n = max(round(n * gd), 1) if n > 1 else n
        try:
            if block in CHANNEL_BLOCKS:
                c1, c2 = channels(f), make_divisible(args[0] * gw, 8)
                args = [c1, c2, *args[1:]]
            elif block is B.Concat:
                c2 = sum(channels(x) for x in f)
            elif block is B.CBLinear:
                c2 = args[0]
                args = [channels(f), c2, *args[1:]]
            elif block is B.CBFuse:
                c2 = channels(f[-1])
            elif block in HEADS:
                args = [args[0], [channels(x) for x in f]]
                c2 = None
            else:
                c2 = channels(f)
            module = nn.Sequential(*(block(*args) for _ in range(n))) if n > 1 else block(*args)
        except (IndexError, TypeError, ValueError) as exc:
            raise EdgekitError(f"layer {i} ({name} {args}) of the model yaml does not build: {exc}") from None
        module.f, module.type = f, name
        layers.append(module)
        outs.append(c2)
    if not isinstance(layers[-1], HEADS):
        raise EdgekitError(f"the last layer of the model yaml is {rows[-1][2]}, not a DDetect/DualDDetect head")
    return layers


def build(name_or_cfg: str | dict[str, Any], nc: int | None = None) -> YOLOv9:
    """A model from a built-in architecture name (yolov9-t..e, gelan-t..e) or a yaml dict."""
    if isinstance(name_or_cfg, str):
        if name_or_cfg not in CONFIGS:
            raise EdgekitError(f"unknown YOLOv9 architecture '{name_or_cfg}' (known: {', '.join(CONFIGS)})")
        name_or_cfg = CONFIGS[name_or_cfg]
    return YOLOv9(name_or_cfg, nc)


def from_checkpoint(ckpt: Checkpoint) -> YOLOv9:
    """Build the model a YOLOv9 checkpoint describes and load its weights strictly (in float32)."""
    record = ckpt.model_record()
    cfg = record.__dict__.get("yaml")
    if not isinstance(cfg, dict):
        raise EdgekitError(f"{ckpt.path.name}: the pickled model carries no yaml architecture")
    model = YOLOv9(cfg)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state_dict(record).items()}
    check_classes(model, weights, ckpt.path.name)
    load_strict(model, weights, ckpt.path.name)
    copy_batchnorm_eps(model, record)
    names = class_names(record.__dict__.get("names"), model.nc)
    if len(names) != model.nc:
        raise EdgekitError(f"{ckpt.path.name}: class-count mismatch: {len(names)} names for nc={model.nc}")
    model.names = names
    stride = record.__dict__.get("stride")
    if isinstance(stride, torch.Tensor) and stride.numel() == model.head.nl:
        if not torch.allclose(stride.float(), model.stride):
            raise EdgekitError(f"{ckpt.path.name}: stored strides {stride.tolist()} differ from the yaml's")
    return model.eval()


def check_classes(model: YOLOv9, weights: dict[str, torch.Tensor], source: str) -> None:
    """Raise a clear error when the head's weights hold another class count than the yaml's nc."""
    head = model.head
    for branch in ("cv3", "cv5"):
        key = f"model.{head.i}.{branch}.0.2.weight"
        if key in weights and weights[key].shape[0] != model.nc:
            raise EdgekitError(
                f"{source}: class-count mismatch: the yaml says nc={model.nc} but the head's weights "
                f"({key}) hold {weights[key].shape[0]} classes"
            )


def is_yolov9_record(record: Record) -> bool:
    return record._full_name in ("models.yolo.DetectionModel", "models.yolo.Model")
