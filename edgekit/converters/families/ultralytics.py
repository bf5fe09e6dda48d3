"""Ultralytics checkpoints to deploy form: pick the inference branch, fold BatchNorm, set the output mode.

End-to-end heads (YOLO26) export their one-to-one branch, NMS-free, in one of two forms:
``graph``: the reference's top-k selection inside the graph, emitting ``detections`` [B, 300, 6];
``runtime``: ``boxes`` + ``scores`` of the one-to-one branch, the runtime doing the same top-k in numpy.
The second keeps every selection step out of the graph, so static INT8 cannot collapse the top-k or
the class index (the known failure of quantized end-to-end heads): INT8 targets use it.
``nms=True`` exports the one-to-many branch for NMS decoding instead.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgekit.converters.families.base import Family, SourceOptions, model_yaml, pickled_model
from edgekit.converters.source import SourceModel, boxes_scores_from_packed
from edgekit.errors import EdgekitError
from edgekit.meta import DecodeSpec, InputSpec, OutputSpec
from edgekit.models import ultralytics as U
from edgekit.models.checkpoint import Checkpoint
from edgekit.models.fuse import reparameterize
from edgekit.models.ultralytics_configs import CONFIGS

TOPK_MODES = ("auto", "graph", "runtime")


def to_deploy(model: U.UltralyticsYOLO, mode: str) -> tuple[U.UltralyticsYOLO, list[str]]:
    """A fused copy whose head emits `mode` (``e2e``, ``o2o`` or ``o2m``), and a line per transform."""
    deploy = copy.deepcopy(model)
    head = deploy.head
    notes = []
    if model.end2end and mode == "o2m":
        head.one2one_cv2 = head.one2one_cv3 = None
        notes.append("one-to-one branch removed: exporting the one-to-many branch for NMS")
    elif model.end2end:
        head.cv2 = head.cv3 = None
        notes.append("one-to-many (training) branch removed: exporting the NMS-free one-to-one branch")
    blocks, bns = reparameterize(deploy)
    head.stride = tuple(float(s) for s in head.stride)  # constants, so torch.export can trace it
    notes.append(
        f"re-parameterized {blocks} RepConv blocks, folded {bns} BatchNorms" if blocks else f"folded {bns} BatchNorms"
    )
    head.mode = mode
    return deploy.eval(), notes


def source_model(
    model: U.UltralyticsYOLO, variant: str, path: Path | None = None, topk: str = "auto", nms: bool = False
) -> SourceModel:
    """Wrap an Ultralytics model (eval mode) for the shared export path in the requested output mode."""
    if topk not in TOPK_MODES:
        raise EdgekitError(f"unknown top-k placement '{topk}' (choose {' or '.join(TOPK_MODES)})")
    model = model.float().eval()
    end2end = model.end2end and not nms
    mode = ("o2o" if topk == "runtime" else "e2e") if end2end else "o2m"

    def reference(x: torch.Tensor) -> dict[str, torch.Tensor]:
        head = model.head
        saved = head.mode
        try:
            if mode == "e2e":
                head.mode = "reference"
                rows = model(x).clone()
                rows[..., [0, 2]] /= x.shape[3]
                rows[..., [1, 3]] /= x.shape[2]
                head.mode = "o2o"
                anchor_boxes, anchor_scores = model(x)
                return {"detections": rows, "_anchor_boxes": anchor_boxes, "_anchor_scores": anchor_scores}
            if mode == "o2o":
                head.mode = "o2o"
                boxes, scores = model(x)
                return {"boxes": boxes, "scores": scores}
            if model.end2end:  # NMS export of an end-to-end model: its one-to-many branch
                head.mode = "o2m"
                boxes, scores = model(x)
                return {"boxes": boxes, "scores": scores}
            head.mode = "reference"
            return boxes_scores_from_packed(model(x), x.shape[3], x.shape[2])
        finally:
            head.mode = saved

    def make_deploy() -> U.UltralyticsYOLO:
        deploy, notes = to_deploy(model, mode)
        source.notes[:] = notes
        return deploy

    if mode == "e2e":
        outputs = OutputSpec(kind="detections", names=["detections"])
        decode = DecodeSpec(method="none", conf=0.25, max_det=model.head.max_det)
    elif mode == "o2o":
        outputs = OutputSpec()
        decode = DecodeSpec(method="topk", conf=0.25, max_det=model.head.max_det)
    else:
        outputs = OutputSpec()
        decode = DecodeSpec(method="nms", conf=0.25, iou=0.7, max_det=300)
    source = SourceModel(
        family="yolo26" if model.end2end else "ultralytics-yolov9",
        variant=variant,
        classes=list(model.names),
        training=model,
        reference=reference,
        make_deploy=make_deploy,
        stride=int(model.stride.max()),
        input=InputSpec(channels=model.channels),
        outputs=outputs,
        decode=decode,
        path=path,
        tag={"e2e": "", "o2o": "topk", "o2m": "nms" if model.end2end else ""}[mode],
    )
    return source


def from_checkpoint(ckpt: Checkpoint, topk: str = "auto", nms: bool = False) -> SourceModel:
    lineage = foreign_lineage(model_yaml(ckpt.model_record()))
    if lineage:
        raise EdgekitError(
            f"{ckpt.path.name}: an Ultralytics {lineage} model; edgekit converts YOLO26 and Ultralytics' "
            "YOLOv9 (yolov9t..e) from Ultralytics checkpoints"
        )
    model = U.from_checkpoint(ckpt)
    return source_model(model, model.variant, ckpt.path, topk, nms)


def from_arch(name: str, nc: int | None = None, topk: str = "auto", nms: bool = False) -> SourceModel:
    return source_model(U.build(name, nc).eval(), name, None, topk, nms)


GELAN_BLOCKS = {"RepNCSPELAN4", "ELAN1", "ADown", "AConv", "SPPELAN"}
LINEAGES = (("C3k2", "YOLO11"), ("C2f", "YOLOv8"), ("C3", "YOLOv5u"))  # by a block the lineage uses


def foreign_lineage(cfg: dict) -> str | None:
    """Which Ultralytics lineage other than YOLO26 and GELAN (YOLOv9) a yaml describes, or None for those two
    (and for yamls that say too little to tell, which the model builder then judges)."""
    rows = [r for r in list(cfg.get("backbone") or []) + list(cfg.get("head") or []) if isinstance(r, (list, tuple))]
    blocks = {str(r[2]) for r in rows if len(r) == 4}
    if not blocks or cfg.get("end2end") or blocks & GELAN_BLOCKS:
        return None
    return next((name for block, name in LINEAGES if block in blocks), None)


def recognises(ckpt: Checkpoint, options: SourceOptions) -> bool:
    """A pickled Ultralytics model (``ultralytics.*``); its loader refuses tasks and lineages it cannot convert."""
    record = pickled_model(ckpt)
    return record is not None and record._full_name.startswith("ultralytics.")


FAMILY = Family(
    name="ultralytics",
    recognises=recognises,
    load=lambda ckpt, o: from_checkpoint(ckpt, o.topk, o.nms),
    archs=tuple(CONFIGS),
    build=lambda name, o: from_arch(name, topk=o.topk, nms=o.nms),
)
