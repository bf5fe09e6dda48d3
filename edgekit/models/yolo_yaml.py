"""One layer parser and one block table for the families that describe models with a YOLO yaml
(YOLOv9/GELAN from WongKinYiu/yolov9, and Ultralytics' YOLOv5u, YOLOv8, YOLO11, YOLOv10, YOLO26 and
yolov9t..e).

Each yaml row is ``[from, repeats, block, args]``. The rules follow the references' ``parse_model``:
depth and width multiples (or Ultralytics' compound ``scales`` with max channels), channel bookkeeping,
repeat arguments for the C2f/C3 family, C3k for the m/l/x scales, legacy heads before C3k2 or C2fCIB. The two
conventions differ only in their heads and in one block class (Ultralytics' SPPELAN holds bare
MaxPool2d layers where YOLOv9's wraps them: the same computation, kept apart so each checkpoint's
module tree matches its reference). Nothing in a yaml is evaluated as code: names resolve through a
table and literals through ``ast.literal_eval``.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models import ultralytics_blocks as U
from edgekit.models import yolov9_blocks as G
from edgekit.models.graph import make_divisible

BLOCKS: dict[str, type[nn.Module]] = {
    "Conv": G.Conv,
    "DWConv": U.DWConv,
    "AConv": G.AConv,
    "ADown": G.ADown,
    "ELAN1": G.ELAN1,
    "RepNCSPELAN4": G.RepNCSPELAN4,
    "RepNCSP": G.RepNCSP,
    "SPPELAN": G.SPPELAN,
    "Bottleneck": U.Bottleneck,
    "C2f": U.C2f,
    "C3": U.C3,
    "C3k2": U.C3k2,
    "C2PSA": U.C2PSA,
    "C2fCIB": U.C2fCIB,
    "PSA": U.PSA,
    "SCDown": U.SCDown,
    "SPPF": U.SPPF,
    "CBLinear": G.CBLinear,
    "CBFuse": G.CBFuse,
    "Silence": G.Silence,
    "Concat": G.Concat,
    "nn.Upsample": nn.Upsample,
    "Upsample": nn.Upsample,
    "nn.Identity": nn.Identity,
    "DDetect": G.DDetect,
    "DualDDetect": G.DualDDetect,
    "Detect": U.Detect,
    "v10Detect": U.v10Detect,
}
# blocks whose first argument is the output width (scaled), the input width prepended
CHANNEL_BLOCKS = (
    G.Conv, U.DWConv, G.AConv, G.ADown, G.ELAN1, G.RepNCSPELAN4, G.SPPELAN, U.SPPELAN,
    U.Bottleneck, U.C2f, U.C3, U.C3k2, U.C2PSA, U.SPPF, U.C2fCIB, U.PSA, U.SCDown,
)  # fmt: skip
REPEAT_BLOCKS = (U.C2f, U.C3, U.C3k2, U.C2PSA, U.C2fCIB)  # take the repeat count as an argument
ACTIVATIONS = {"SiLU": nn.SiLU, "ReLU": nn.ReLU, "LeakyReLU": nn.LeakyReLU, "Hardswish": nn.Hardswish, "Mish": nn.Mish}


@dataclass(frozen=True)
class Convention:
    """What differs between two yaml conventions: the heads they end in, block-class overrides."""

    name: str
    heads: tuple[type[nn.Module], ...]
    overrides: Mapping[str, type[nn.Module]] = field(default_factory=dict)


YOLOV9 = Convention("yolov9", heads=(G.DDetect, G.DualDDetect))
ULTRALYTICS = Convention("ultralytics", heads=(U.Detect, U.v10Detect), overrides={"SPPELAN": U.SPPELAN})


def activation(text: str) -> nn.Module:
    """Parse the yaml's `activation` (e.g. ``nn.LeakyReLU(0.1)``) without evaluating it."""
    match = re.fullmatch(r"\s*(?:nn\.)?(\w+)\(\s*([0-9.eE+-]*)\s*\)\s*", text)
    if not match or match.group(1) not in ACTIVATIONS:
        raise EdgekitError(f"unsupported activation in the model yaml: {text!r}")
    name, arg = match.groups()
    return ACTIVATIONS[name](float(arg)) if arg else ACTIVATIONS[name]()


@contextlib.contextmanager
def default_activation(act: nn.Module | None) -> Iterator[None]:
    """Temporarily set the default activation of Conv and RepConvN while a model is built."""
    saved = G.Conv.default_act, G.RepConvN.default_act
    if act is not None:
        G.Conv.default_act = G.RepConvN.default_act = act
    try:
        yield
    finally:
        G.Conv.default_act, G.RepConvN.default_act = saved


def _arg(value: Any, names: dict[str, Any]) -> Any:
    """Resolve the names a yaml uses inside layer arguments (``nc``, ``reg_max``, ``None``...)."""
    if not isinstance(value, str):
        return value
    if value in names:
        return names[value]
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def input_channels(cfg: dict[str, Any]) -> int:
    """The image channels a yaml declares (``channels`` or ``ch``; 3 when absent)."""
    return int(cfg.get("channels", cfg.get("ch", 3)))


def parse_layers(cfg: dict[str, Any], convention: Convention) -> list[nn.Module]:
    """Build the layers of a yaml dict as the reference's parse_model does; each module gets ``f`` (its
    inputs) and ``type`` (its block name). Raises EdgekitError naming the row that does not build."""
    try:
        nc = int(cfg["nc"])
        rows = list(cfg["backbone"]) + list(cfg["head"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgekitError(f"the model yaml lacks {exc}: expected nc, backbone and head") from None
    reg_max = int(cfg.get("reg_max", 16))
    end2end = bool(cfg.get("end2end", False))
    depth, width = float(cfg.get("depth_multiple", 1.0)), float(cfg.get("width_multiple", 1.0))
    max_channels = float("inf")
    scale, scales = cfg.get("scale"), cfg.get("scales")
    if scales:
        if not scale:
            scale = next(iter(scales))
        if scale not in scales:
            raise EdgekitError(f"the model yaml has no scale '{scale}' (it has {', '.join(scales)})")
        depth, width, max_channels = scales[scale]
    names = {"nc": nc, "anchors": cfg.get("anchors", 3), "reg_max": reg_max, "end2end": end2end}
    table = {**BLOCKS, **convention.overrides}
    legacy = True
    outs: list[Any] = []
    layers: list[nn.Module] = []

    def channels(index: int) -> Any:
        return (outs or [input_channels(cfg)])[index]

    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise EdgekitError(f"layer {i} of the model yaml is not [from, repeats, block, args]: {row!r}")
        f, n, name, args = row
        block = table.get(name)
        if block is None:
            known = ", ".join(table)
            raise EdgekitError(f"unknown block '{name}' in layer {i} of the model yaml (edgekit knows {known})")
        args = [_arg(a, names) for a in args]
        n = max(round(n * depth), 1) if n > 1 else n
        extra: dict[str, Any] = {}
        try:
            if block in CHANNEL_BLOCKS:
                c1, c2 = channels(f), make_divisible(min(args[0], max_channels) * width, 8)
                args = [c1, c2, *args[1:]]
                if block in REPEAT_BLOCKS:
                    args.insert(2, n)
                    n = 1
                if block in (U.C3k2, U.C2fCIB):
                    legacy = False
                if block is U.C3k2 and scale in ("m", "l", "x"):
                    args[3:4] = [True]
            elif block is G.Concat:
                c2 = sum(channels(x) for x in f)
            elif block is U.v10Detect:
                args = [*args[:1], [channels(x) for x in f]]
                c2 = None
            elif block is U.Detect:
                args = [*args[:1], reg_max, end2end, [channels(x) for x in f]]
                extra["legacy"] = legacy
                c2 = None
            elif block in (G.DDetect, G.DualDDetect):
                args = [args[0], [channels(x) for x in f]]
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
    if not isinstance(layers[-1], convention.heads):
        heads = "/".join(h.__name__ for h in convention.heads)
        raise EdgekitError(f"the last layer of the model yaml is {rows[-1][2]}, not a {heads} head")
    return layers
