"""YOLOv9 / GELAN models built from their yaml dict (the one every official checkpoint carries).

``build(cfg)`` follows the reference's parse rules (models/yolo_yaml.py); ``from_checkpoint`` reads an
official checkpoint safely and loads its weights strictly.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from edgekit.errors import EdgekitError
from edgekit.models import yolov9_blocks as B
from edgekit.models.checkpoint import Checkpoint, Record, load_pickled_weights, state_dict
from edgekit.models.graph import LayerGraph, probe_strides, set_batchnorm_eps
from edgekit.models.yolo_yaml import YOLOV9, activation, default_activation, input_channels, parse_layers
from edgekit.models.yolov9_configs import CONFIGS


class YOLOv9(LayerGraph):
    """A YOLOv9/GELAN detection model; ``yaml`` is its architecture, ``names`` its class names."""

    family = "yolov9"

    def __init__(self, cfg: dict[str, Any], nc: int | None = None):
        cfg = copy.deepcopy(cfg)
        if nc is not None:
            cfg["nc"] = nc
        self_nc = int(cfg["nc"])
        act = activation(cfg["activation"]) if cfg.get("activation") else None
        with default_activation(act):
            layers = parse_layers(cfg, YOLOV9)
        super().__init__(layers)
        set_batchnorm_eps(self, 1e-3)  # as the reference trainers' initialize_weights does
        self.yaml = cfg
        self.nc = self_nc
        self.names = [str(i) for i in range(self_nc)]
        self.channels = input_channels(cfg)
        self.stride = probe_strides(self, channels=self.channels)

    @property
    def dual(self) -> bool:
        return isinstance(self.head, B.DualDDetect)

    def main_inputs(self) -> list[int]:
        """Layer indices feeding the main prediction branch of the head."""
        sources = self.head.sources
        return sources[len(sources) // 2 :] if self.dual else sources


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
    load_pickled_weights(model, record, weights, ckpt.path.name)
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
