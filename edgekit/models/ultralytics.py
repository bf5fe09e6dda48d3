"""Ultralytics detection models (YOLOv5u, YOLOv8, YOLO11, YOLOv10, YOLO26, the GELAN-only yolov9t..e) built from
their yaml dict.

The layers come from the shared YOLO-yaml parser (models/yolo_yaml.py), which follows Ultralytics'
parse_model, so a checkpoint's weights load strictly. Ultralytics itself is
never imported.
"""

from __future__ import annotations

import copy
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.models.checkpoint import (
    Checkpoint,
    Record,
    load_pickled_weights,
    records_by_name,
    state_dict,
)
from edgekit.models.graph import LayerGraph, probe_strides, set_batchnorm_eps
from edgekit.models.ultralytics_configs import CONFIGS
from edgekit.models.yolo_yaml import ULTRALYTICS, activation, default_activation, input_channels, parse_layers

TASKS = {
    "DetectionModel": "detect",
    "SegmentationModel": "segment",
    "PoseModel": "pose",
    "OBBModel": "obb",
    "ClassificationModel": "classify",
    "WorldModel": "YOLO-World",
    "YOLOEModel": "YOLOE",
    "YOLOESegModel": "YOLOE segment",
    "RTDETRDetectionModel": "RT-DETR",
}
SUPPORTED = "Ultralytics detect models of YOLOv5u, YOLOv8, YOLO11, YOLOv10, YOLO26 and YOLOv9 (yolov9t..e)"
GELAN_BLOCKS = {"RepNCSPELAN4", "ELAN1", "ADown", "AConv", "SPPELAN"}
# lineages of detect models by a block their yaml holds, first match wins (after v10Detect and end2end)
LINEAGES = (("C3k2", "yolo11"), ("C2f", "yolov8"), ("C3", "yolov5u"))
OUT_OF_SCOPE = {"A2C2f": "YOLO12", "RTDETRDecoder": "RT-DETR", "WorldDetect": "YOLO-World", "YOLOEDetect": "YOLOE"}


def yaml_blocks(cfg: dict[str, Any]) -> list[str]:
    """The block names of a yaml dict's rows, in order (backbone then head; malformed rows skipped)."""
    rows = list(cfg.get("backbone") or []) + list(cfg.get("head") or [])
    return [str(r[2]) for r in rows if isinstance(r, (list, tuple)) and len(r) == 4]


def lineage(cfg: dict[str, Any]) -> str:
    """The lineage a yaml dict describes (``yolov10``, ``yolo26``, ``ultralytics-yolov9``, ``yolo11``, ``yolov8``,
    ``yolov5u``), ``ultralytics`` for a custom mix, or the out-of-scope lineage's name (``YOLO12``...) when it
    holds a block edgekit does not convert (:data:`OUT_OF_SCOPE`)."""
    blocks = yaml_blocks(cfg)
    foreign = next((OUT_OF_SCOPE[b] for b in blocks if b in OUT_OF_SCOPE), None)
    if foreign:
        return foreign
    if blocks and blocks[-1] == "v10Detect":
        return "yolov10"
    if cfg.get("end2end"):
        return "yolo26"
    if GELAN_BLOCKS & set(blocks):
        return "ultralytics-yolov9"
    return next((name for block, name in LINEAGES if block in blocks), "ultralytics")


class UltralyticsYOLO(LayerGraph):
    """An Ultralytics detection model; ``end2end`` when its head carries the one-to-one branch."""

    family = "ultralytics"

    def __init__(self, cfg: dict[str, Any], nc: int | None = None):
        cfg = copy.deepcopy(cfg)
        if nc is not None:
            cfg["nc"] = nc
        act = activation(cfg["activation"]) if cfg.get("activation") else None
        with default_activation(act):
            layers = parse_layers(cfg, ULTRALYTICS)
        super().__init__(layers)
        set_batchnorm_eps(self, 1e-3)  # as the reference trainers' initialize_weights does
        self.yaml = cfg
        self.nc = int(cfg["nc"])
        self.names = [str(i) for i in range(self.nc)]
        self.channels = input_channels(cfg)
        self.stride = probe_strides(self, channels=self.channels)
        # whether Ultralytics runs the one-to-one branch for this model (from_checkpoint reads the saved switch)
        self.runs_end2end = self.end2end

    @property
    def lineage(self) -> str:
        """``yolov5u``, ``yolov8``, ``yolo11``, ``yolov10``, ``yolo26``, ``ultralytics-yolov9`` or ``ultralytics``."""
        return lineage(self.yaml)

    @property
    def end2end(self) -> bool:
        """Whether the head has the one-to-one (end-to-end) branch."""
        return self.head.end2end

    @property
    def variant(self) -> str:
        stem = str(self.yaml.get("yaml_file", "")).rsplit("/", 1)[-1].removesuffix(".yaml")
        return stem or "custom"


def build(name_or_cfg: str | dict[str, Any], nc: int | None = None) -> UltralyticsYOLO:
    """A model from a built-in name (yolov5nu..xu, yolov8n..x, yolo11n..x, yolov10n..x, yolo26n..x, yolov9t..e) or
    a yaml dict."""
    if isinstance(name_or_cfg, str):
        if name_or_cfg not in CONFIGS:
            raise EdgekitError(f"unknown Ultralytics architecture '{name_or_cfg}' (known: {', '.join(CONFIGS)})")
        name_or_cfg = CONFIGS[name_or_cfg]
    return UltralyticsYOLO(name_or_cfg, nc)


def task_of(type_name: str) -> str:
    """The Ultralytics task (or non-YOLO detector) of a pickled model class (``SegmentationModel`` -> ``segment``,
    ``RTDETRDetectionModel`` -> ``RT-DETR``)."""
    return TASKS.get(type_name, type_name)


def from_checkpoint(ckpt: Checkpoint) -> UltralyticsYOLO:
    """Build the model an Ultralytics checkpoint describes and load its weights strictly (float32)."""
    record = ckpt.model_record()
    task = task_of(record.type_name)
    cfg = record.__dict__.get("yaml")
    found = task if task != "detect" else lineage(cfg) if isinstance(cfg, dict) else "detect"
    if found in OUT_OF_SCOPE.values() or task != "detect":
        raise EdgekitError(
            f"{ckpt.path.name}: an Ultralytics {found} model, which edgekit does not convert ({SUPPORTED})"
        )
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
    load_pickled_weights(model, record, weights, ckpt.path.name)
    head = records_by_name(record).get(f"model.{model.head.i}")
    model.runs_end2end = model.end2end and (head is None or saved_end2end(head))
    return model.eval()


def saved_end2end(head: Record) -> bool:
    """The end-to-end switch an Ultralytics Detect head was pickled with.

    Ultralytics' ``Detect.end2end`` (ultralytics/nn/modules/head.py) is a property over ``_end2end``, True when
    unset; ``model.end2end = ...`` sets it, and its validator does so during training (False unless NMS is
    turned off), so a trained YOLO26 is often saved with False. Its predict, val and export then run the
    one-to-many branch with NMS.
    """
    state = head.__dict__
    return bool(state.get("_end2end", state.get("end2end", True)))
