"""YOLOv9 to deploy form: strip the PGI branch by reachability, collapse RepConvN, fold BatchNorm."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from edgekit.converters.families.base import Family, SourceOptions, head_block, model_yaml, pickled_model
from edgekit.converters.source import SourceModel, boxes_scores_from_packed
from edgekit.meta import DecodeSpec
from edgekit.models import yolov9 as Y
from edgekit.models.checkpoint import Checkpoint
from edgekit.models.fuse import reparameterize
from edgekit.models.graph import absolute_sources
from edgekit.models.yolov9_blocks import DDetect
from edgekit.models.yolov9_configs import CONFIGS


def strip_pgi(model: Y.YOLOv9) -> tuple[Y.YOLOv9, int]:
    """A copy keeping only what the main head needs; a DualDDetect becomes a DDetect on its main branch.

    Works for every size: the layers that only feed the auxiliary head (t/s: the extra top-down branch;
    m/c: the reversible CB backbone; e: the first backbone's head) are simply not ancestors of the main
    head's inputs. Returns the copy and how many layers were removed.
    """
    deploy = copy.deepcopy(model)
    if not deploy.dual:
        return deploy, 0
    dual = deploy.head
    main = deploy.main_inputs()
    head = DDetect.__new__(DDetect)
    torch.nn.Module.__init__(head)
    head.nc, head.nl, head.reg_max, head.no = dual.nc, dual.nl, dual.reg_max, dual.no
    head.stride = dual.stride
    head.cv2, head.cv3, head.dfl = dual.cv4, dual.cv5, dual.dfl2
    head.i, head.f, head.type = dual.i, main, "DDetect"
    head.sources = absolute_sources(dual.i, main)
    deploy.model[dual.i] = head
    removed = deploy.prune(deploy.ancestors(main) | {dual.i})
    return deploy, removed


def to_deploy(model: Y.YOLOv9) -> tuple[Y.YOLOv9, list[str]]:
    """The export-form deploy model, and a line per transform for the log."""
    deploy, removed = strip_pgi(model)
    blocks, bns = reparameterize(deploy)
    deploy.head.export = True
    deploy.head.stride = tuple(float(s) for s in deploy.head.stride)  # constants, so torch.export can trace it
    notes = [
        f"PGI auxiliary branch: {removed} layers and the auxiliary head removed" if model.dual else "no PGI branch",
        f"re-parameterized {blocks} RepConvN blocks, folded {bns} BatchNorms",
    ]
    return deploy.eval(), notes


def source_model(model: Y.YOLOv9, variant: str, path: Path | None = None) -> SourceModel:
    """Wrap a YOLOv9 model (training form, eval mode) for the shared export path."""
    model = model.float().eval()

    def reference(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(x)
        main = out[1] if model.dual else out  # the dual head returns [aux, main]: MAIN is the second
        return boxes_scores_from_packed(main, x.shape[3], x.shape[2])

    def make_deploy() -> Y.YOLOv9:
        deploy, notes = to_deploy(model)
        source.notes[:] = notes
        return deploy

    source = SourceModel.of(
        model,
        family="yolov9",
        variant=variant,
        reference=reference,
        make_deploy=make_deploy,
        decode=DecodeSpec(method="nms", conf=0.25, iou=0.45, max_det=300),
        path=path,
    )
    return source


def variant_of(model: Y.YOLOv9) -> str:
    """The official architecture name whose layers this model matches, or 'custom'."""
    for name, cfg in Y.CONFIGS.items():
        rows = [r[:3] for r in cfg["backbone"] + cfg["head"]]
        mine = [r[:3] for r in model.yaml["backbone"] + model.yaml["head"]]
        if (
            rows == mine
            and [r[3] for r in cfg["backbone"] + cfg["head"]][:-1]
            == [r[3] for r in model.yaml["backbone"] + model.yaml["head"]][:-1]
        ):
            return name
    return "custom"


def from_checkpoint(ckpt: Checkpoint) -> SourceModel:
    model = Y.from_checkpoint(ckpt)
    return source_model(model, variant_of(model), ckpt.path)


def from_arch(name: str, nc: int | None = None) -> SourceModel:
    """A randomly initialised built-in architecture (for model facts and tests)."""
    return source_model(Y.build(name, nc).eval(), name)


HEADS = ("DDetect", "DualDDetect")


def recognises(ckpt: Checkpoint, options: SourceOptions) -> bool:
    """A pickled model of the YOLOv9 repository (``models.yolo.*``) whose yaml ends in a YOLOv9 head (YOLOv5
    and YOLOv7 pickles share the module path but not the head)."""
    record = pickled_model(ckpt)
    return (
        record is not None
        and record._full_name.startswith("models.")
        and head_block(model_yaml(record)) in HEADS
    )


FAMILY = Family(
    name="yolov9",
    recognises=recognises,
    load=lambda ckpt, options: from_checkpoint(ckpt),
    archs=tuple(CONFIGS),
    build=lambda name, options: from_arch(name),
)
