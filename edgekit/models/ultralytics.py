"""Ultralytics detection models (YOLO26 n..x, the GELAN-only yolov9t..e) built from their yaml dict.

The rules follow Ultralytics' parse_model (compound scales, max channels, repeat arguments, C3k for the
m/l/x scales, legacy heads before C3k2) so a checkpoint's weights load strictly. Ultralytics itself is
never imported.
"""

from __future__ import annotations

import ast
import copy
from typing import Any

from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models import ultralytics_blocks as U
from edgekit.models import yolov9_blocks as G
from edgekit.models.checkpoint import Checkpoint, class_names, copy_batchnorm_eps, load_strict, state_dict
from edgekit.models.graph import LayerGraph, make_divisible, probe_strides, set_batchnorm_eps
from edgekit.models.ultralytics_configs import CONFIGS
from edgekit.models.yolov9 import _activation, _default_activation

BLOCKS: dict[str, type[nn.Module]] = {
    "Conv": G.Conv,
    "DWConv": U.DWConv,
    "Bottleneck": U.Bottleneck,
    "C2f": U.C2f,
    "C3": U.C3,
    "C3k2": U.C3k2,
    "C2PSA": U.C2PSA,
    "SPPF": U.SPPF,
    "RepNCSPELAN4": G.RepNCSPELAN4,
    "ELAN1": G.ELAN1,
    "ADown": G.ADown,
    "AConv": G.AConv,
    "SPPELAN": U.SPPELAN,
    "CBLinear": G.CBLinear,
    "CBFuse": G.CBFuse,
    "Concat": G.Concat,
    "nn.Upsample": nn.Upsample,
    "nn.Identity": nn.Identity,
    "Detect": U.Detect,
}
BASE = (
    G.Conv,
    U.DWConv,
    U.Bottleneck,
    U.C2f,
    U.C3,
    U.C3k2,
    U.C2PSA,
    U.SPPF,
    G.RepNCSPELAN4,
    G.ELAN1,
    G.ADown,
    G.AConv,
    U.SPPELAN,
)
REPEAT = (U.C2f, U.C3, U.C3k2, U.C2PSA)
TASKS = {
    "DetectionModel": "detect",
    "SegmentationModel": "segment",
    "PoseModel": "pose",
    "OBBModel": "obb",
    "ClassificationModel": "classify",
    "WorldModel": "world",
    "YOLOEModel": "yoloe",
    "RTDETRDetectionModel": "rtdetr",
}


def _arg(value: Any, names: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        return value
    if value in names:
        return names[value]
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


class UltralyticsYOLO(LayerGraph):
    """An Ultralytics detection model; ``end2end`` when its head carries the one-to-one branch."""

    family = "ultralytics"

    def __init__(self, cfg: dict[str, Any], nc: int | None = None):
        cfg = copy.deepcopy(cfg)
        if nc is not None:
            cfg["nc"] = nc
        act = _activation(cfg["activation"]) if cfg.get("activation") else None
        with _default_activation(act):
            layers = parse_layers(cfg)
        super().__init__(layers)
        set_batchnorm_eps(self, 1e-3)  # as the reference trainers' initialize_weights does
        self.yaml = cfg
        self.nc = int(cfg["nc"])
        self.names = [str(i) for i in range(self.nc)]
        self.stride = probe_strides(self)

    @property
    def end2end(self) -> bool:
        return self.head.end2end

    @property
    def variant(self) -> str:
        stem = str(self.yaml.get("yaml_file", "")).rsplit("/", 1)[-1].removesuffix(".yaml")
        return stem or "custom"


def parse_layers(cfg: dict[str, Any]) -> list[nn.Module]:
    """Build the layers of an Ultralytics yaml dict as Ultralytics' parse_model does."""
    try:
        nc = int(cfg["nc"])
        rows = list(cfg["backbone"]) + list(cfg["head"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgekitError(f"the model yaml lacks {exc}: expected nc, backbone and head") from None
    reg_max = int(cfg.get("reg_max", 16))
    end2end = bool(cfg.get("end2end", False))
    depth, width = float(cfg.get("depth_multiple", 1.0)), float(cfg.get("width_multiple", 1.0))
    max_channels = float("inf")
    scale = cfg.get("scale")
    scales = cfg.get("scales")
    if scales:
        if not scale:
            scale = next(iter(scales))
        if scale not in scales:
            raise EdgekitError(f"the model yaml has no scale '{scale}' (it has {', '.join(scales)})")
        depth, width, max_channels = scales[scale]
    legacy = True
    outs: list[Any] = []
    layers: list[nn.Module] = []

    def channels(index: int) -> Any:
        return (outs or [int(cfg.get("channels", cfg.get("ch", 3)))])[index]

    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise EdgekitError(f"layer {i} of the model yaml is not [from, repeats, block, args]: {row!r}")
        f, n, name, args = row
        block = BLOCKS.get(name)
        if block is None:
            raise EdgekitError(
                f"unknown block '{name}' in layer {i} of the model yaml (edgekit knows {', '.join(BLOCKS)})"
            )
        args = [_arg(a, {"nc": nc, "reg_max": reg_max, "end2end": end2end}) for a in args]
        n = max(round(n * depth), 1) if n > 1 else n
        extra: dict[str, Any] = {}
        try:
            if block in BASE:
                c1, c2 = channels(f), make_divisible(min(args[0], max_channels) * width, 8)
                args = [c1, c2, *args[1:]]
                if block in REPEAT:
                    args.insert(2, n)
                    n = 1
                if block is U.C3k2:
                    legacy = False
                    if scale in ("m", "l", "x"):
                        args[3:4] = [True]
            elif block is G.Concat:
                c2 = sum(channels(x) for x in f)
            elif block is U.Detect:
                args = [*args[:1], reg_max, end2end, [channels(x) for x in f]]
                extra["legacy"] = legacy
                c2 = None
            elif block is G.CBLinear:
                c2 = args[0]
                args = [channels(f), c2, *args[1:]]
            elif block is G.CBFuse:
                c2 = channels(f[-1])
            else:
                c2 = channels(f)
            module = nn.Sequential(*(block(*args, **extra) for _ in range(n))) if n > 1 else block(*args, **extra)
        except (IndexError, TypeError, ValueError) as exc:
            raise EdgekitError(f"layer {i} ({name} {args}) of the model yaml does not build: {exc}") from None
        if block is U.SPPF and len(args) <= 3:  # older SPPF rows: the first conv keeps its activation
            for sppf in module if n > 1 else [module]:
                sppf.cv1.act = G.Conv.default_act
        module.f, module.type = f, name
        layers.append(module)
        outs.append(c2)
    if not isinstance(layers[-1], U.Detect):
        raise EdgekitError(f"the last layer of the model yaml is {rows[-1][2]}, not a Detect head")
    return layers


def build(name_or_cfg: str | dict[str, Any], nc: int | None = None) -> UltralyticsYOLO:
    """A model from a built-in name (yolo26n..x, yolov9t..e) or a yaml dict."""
    if isinstance(name_or_cfg, str):
        if name_or_cfg not in CONFIGS:
            raise EdgekitError(f"unknown Ultralytics architecture '{name_or_cfg}' (known: {', '.join(CONFIGS)})")
        name_or_cfg = CONFIGS[name_or_cfg]
    return UltralyticsYOLO(name_or_cfg, nc)


def task_of(type_name: str) -> str:
    """The Ultralytics task of a pickled model class (``SegmentationModel`` -> ``segment``)."""
    return TASKS.get(type_name, type_name)


def from_checkpoint(ckpt: Checkpoint) -> UltralyticsYOLO:
    """Build the model an Ultralytics checkpoint describes and load its weights strictly (float32)."""
    record = ckpt.model_record()
    task = task_of(record.type_name)
    if task != "detect":
        raise EdgekitError(
            f"{ckpt.path.name}: an Ultralytics {task} model; only detect models are supported yet "
            f"({task} is not supported yet)"
        )
    cfg = record.__dict__.get("yaml")
    if not isinstance(cfg, dict):
        raise EdgekitError(f"{ckpt.path.name}: the pickled model carries no yaml architecture")
    model = UltralyticsYOLO(cfg)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state_dict(record).items()}
    head_key = f"model.{model.head.i}.cv3.0.2.weight"
    if head_key in weights and weights[head_key].shape[0] != model.nc:
        raise EdgekitError(
            f"{ckpt.path.name}: class-count mismatch: the yaml says nc={model.nc} but the head's weights "
            f"({head_key}) hold {weights[head_key].shape[0]} classes"
        )
    load_strict(model, weights, ckpt.path.name)
    copy_batchnorm_eps(model, record)
    names = class_names(record.__dict__.get("names"), model.nc)
    if len(names) != model.nc:
        raise EdgekitError(f"{ckpt.path.name}: class-count mismatch: {len(names)} names for nc={model.nc}")
    model.names = names
    return model.eval()
