"""DAMO-YOLO models: the official T/S/M/L, recognised from a checkpoint's tensor shapes.

DAMO-YOLO checkpoints are plain state_dicts (``{epoch, model, optimizer, ...}`` or bare) with no
configuration inside, so the variant is found by comparing every key and shape with the four official
architectures; ``arch`` names it instead, and a mismatch reports the keys and shapes that differ.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from edgekit.errors import EdgekitError
from edgekit.models.checkpoint import Checkpoint, load_strict
from edgekit.models.damo_blocks import DAMOYOLO
from edgekit.models.damo_configs import CONFIGS

COCO_CLASSES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle "
    "wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
    "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven "
    "toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)
COCO = [name.replace("_", " ") for name in COCO_CLASSES.split()]


def build(arch: str, num_classes: int = 80) -> DAMOYOLO:
    """An official architecture (damoyolo-t/s/m/l) with `num_classes` classes."""
    if arch not in CONFIGS:
        raise EdgekitError(f"unknown DAMO-YOLO architecture '{arch}' (known: {', '.join(CONFIGS)})")
    return DAMOYOLO(CONFIGS[arch], num_classes)


def _shapes(arch: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = build(arch, num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def weights_of(ckpt: Checkpoint) -> OrderedDict[str, torch.Tensor]:
    """The state_dict inside a DAMO-YOLO checkpoint, without DDP's ``module.`` prefix."""
    data = ckpt.data
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        keys = ", ".join(map(str, list(ckpt.data)[:8])) if isinstance(ckpt.data, dict) else type(ckpt.data).__name__
        raise EdgekitError(f"{ckpt.path.name}: no state_dict of tensors under 'model' (found: {keys})")
    return OrderedDict((k.removeprefix("module."), v) for k, v in data.items())


def looks_like_damo(weights: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("head.gfl_cls.") for k in weights) and any(k.startswith("neck.merge_") for k in weights)


def _differences(expected: dict[str, tuple], weights: dict[str, torch.Tensor]) -> list[str]:
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in expected]
    problems += [
        f"{k} {tuple(weights[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in weights and tuple(weights[k].shape) != expected[k]
    ]
    return problems


def recognise(weights: dict[str, torch.Tensor], arch: str | None = None) -> tuple[str, int]:
    """The official variant (and class count) whose keys and shapes these weights have exactly."""
    key = "head.gfl_cls.0.weight"
    if key not in weights:
        raise EdgekitError("not a DAMO-YOLO state_dict: it has no head.gfl_cls.0.weight")
    num_classes = int(weights[key].shape[0])
    candidates = [arch] if arch else list(CONFIGS)
    report = {}
    for name in candidates:
        if name not in CONFIGS:
            raise EdgekitError(f"unknown DAMO-YOLO architecture '{name}' (known: {', '.join(CONFIGS)})")
        problems = _differences(_shapes(name, num_classes), weights)
        if not problems:
            return name, num_classes
        report[name] = problems
    best = min(report, key=lambda n: len(report[n]))
    detail = "; ".join(report[best][:4]) + (f"; ... {len(report[best]) - 4} more" if len(report[best]) > 4 else "")
    if arch:
        raise EdgekitError(f"the weights do not fit {arch}: {detail}")
    raise EdgekitError(f"the weights match none of {', '.join(CONFIGS)} (closest {best}: {detail})")


def from_checkpoint(ckpt: Checkpoint, arch: str | None = None) -> tuple[DAMOYOLO, str]:
    """Build the recognised (or named) variant and load the checkpoint's weights strictly, in float32."""
    weights = weights_of(ckpt)
    name, num_classes = recognise(weights, arch)
    model = build(name, num_classes)
    load_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, ckpt.path.name)
    return model.eval(), name
