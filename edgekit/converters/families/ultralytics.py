"""Ultralytics checkpoints to deploy form: pick the inference branch, fold BatchNorm, set the output mode.

Lineages: YOLOv5u, YOLOv8, YOLO11 and the GELAN-only YOLOv9 (one DFL head, NMS), YOLOv10 and YOLO26 (end-to-end).
End-to-end heads have two branches. By default a checkpoint exports the one Ultralytics itself
runs for that file: the one-to-one branch unless its Detect head was saved with ``end2end=False`` (what
Ultralytics' trainer leaves by default), then the one-to-many branch with NMS. ``topk`` asks for the
one-to-one branch, NMS-free, in one of two forms:
``graph``: the reference's top-k selection inside the graph, emitting ``detections`` [B, 300, 6];
``runtime``: ``boxes`` + ``scores`` of the one-to-one branch, the runtime doing the same top-k in numpy.
The second keeps every selection step out of the graph, so static INT8 cannot collapse the top-k or
the class index (the known failure of quantized end-to-end heads): INT8 targets use it.
``nms=True`` asks for the one-to-many branch for NMS decoding.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgekit.converters.families.base import Family, SourceOptions, pickled_model
from edgekit.converters.source import SourceModel, boxes_scores_from_packed
from edgekit.errors import EdgekitError
from edgekit.meta import DecodeSpec, OutputSpec
from edgekit.models import ultralytics as U
from edgekit.models.checkpoint import Checkpoint
from edgekit.models.fuse import reparameterize
from edgekit.models.ultralytics_configs import CONFIGS

TOPK_MODES = ("graph", "runtime")


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


HEADS = {"e2e": "one-to-one", "o2o": "one-to-one", "o2m": "one-to-many + NMS"}


def pick_head(model: U.UltralyticsYOLO, topk: str | None, nms: bool, per_anchor: bool = False) -> tuple[str, str]:
    """The output mode (``e2e``, ``o2o`` or ``o2m``) and a line saying which head and why.

    `nms` asks for the one-to-many branch, `topk` (``graph`` or ``runtime``) for the one-to-one branch;
    neither: the branch Ultralytics runs for this model (``runs_end2end``). `per_anchor` turns top-k in the
    graph into top-k in the runtime (per-anchor boxes and scores). A model without the one-to-one branch
    has one head: ``o2m`` and no line.
    """
    if topk is not None and topk not in TOPK_MODES:
        raise EdgekitError(f"unknown top-k placement '{topk}' (choose {' or '.join(TOPK_MODES)})")
    if not model.end2end:
        return "o2m", ""
    if nms:
        mode, why = "o2m", "as asked (--nms)"
    elif topk is not None:
        mode, why = ("e2e" if topk == "graph" else "o2o"), f"as asked (--topk {topk})"
    elif model.runs_end2end:
        mode, why = "e2e", (
            "the head Ultralytics runs for this model (its Detect head is end-to-end); --nms for the one-to-many branch"
        )
    else:
        mode, why = "o2m", (
            "the head Ultralytics runs for this file: its Detect head was saved with end2end=False (as "
            "Ultralytics' trainer leaves it); --topk graph|runtime for the NMS-free one-to-one branch"
        )
    if mode == "e2e" and per_anchor:
        mode = "o2o"
    place = {"e2e": ", top-k in the graph", "o2o": ", top-k in the runtime", "o2m": ""}[mode]
    return mode, f"{HEADS[mode]}{place}: {why}"


def source_model(
    model: U.UltralyticsYOLO,
    variant: str,
    path: Path | None = None,
    topk: str | None = None,
    nms: bool = False,
    per_anchor: bool = False,
) -> SourceModel:
    """Wrap an Ultralytics model (eval mode) for the shared export path, in the output mode :func:`pick_head`
    chooses from `topk`, `nms` and `per_anchor`. Raises EdgekitError for an unknown `topk`."""
    mode, head_note = pick_head(model, topk, nms, per_anchor)
    model = model.float().eval()

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
    source = SourceModel.of(
        model,
        family=model.lineage,
        variant=variant,
        reference=reference,
        make_deploy=make_deploy,
        outputs=outputs,
        decode=decode,
        path=path,
        tag={"e2e": "", "o2o": "topk", "o2m": "nms" if model.end2end else ""}[mode],
        head=HEADS[mode] if model.end2end else "",
        default_head=HEADS[pick_head(model, None, False)[0]] if model.end2end else "",
        head_note=head_note,
    )
    return source


def from_checkpoint(ckpt: Checkpoint, options: SourceOptions) -> SourceModel:
    """The SourceModel of an Ultralytics detect checkpoint, its head chosen as :func:`pick_head` says."""
    model = U.from_checkpoint(ckpt)
    return source_model(model, model.variant, ckpt.path, options.topk, options.nms, options.per_anchor)


def from_arch(name: str, options: SourceOptions, nc: int | None = None) -> SourceModel:
    """A built-in architecture (seeded random weights), its head chosen as :func:`pick_head` says."""
    return source_model(U.build(name, nc).eval(), name, None, options.topk, options.nms, options.per_anchor)


def recognises(ckpt: Checkpoint, options: SourceOptions) -> bool:
    """A pickled Ultralytics model (``ultralytics.*``); its loader refuses tasks and lineages it cannot convert."""
    record = pickled_model(ckpt)
    return record is not None and record._full_name.startswith("ultralytics.")


FAMILY = Family(
    name="ultralytics",
    recognises=recognises,
    load=from_checkpoint,
    archs=tuple(CONFIGS),
    build=from_arch,
)
