"""The families, one module each, registered in one table; `open_source` finds the one that reads a
checkpoint (or builds a built-in architecture) and refuses what none reads, naming what it found.

Adding a family: write ``families/NAME.py`` exposing ``FAMILY`` (a :class:`Family`: how it recognises a
checkpoint, how it builds the SourceModel, its built-in architectures), its model definitions in
``edgekit/models/``, and add one line to ``FAMILIES``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgekit.checks import check_class_count
from edgekit.converters.families import damo, shapesnet, ultralytics, yolov9
from edgekit.converters.families.base import Family, SourceOptions, head_block, model_yaml, pickled_model
from edgekit.converters.source import SourceModel
from edgekit.errors import EdgekitError
from edgekit.models.checkpoint import Checkpoint, load_checkpoint
from edgekit.runtimes.engine import is_artifact

FAMILIES: list[Family] = [yolov9.FAMILY, ultralytics.FAMILY, damo.FAMILY, shapesnet.FAMILY]

# heads of YOLO lineages edgekit does not convert, to name them when refusing
FOREIGN_HEADS = {
    "Detect": "YOLOv5/YOLOv7 (anchor-based Detect head)",
    "IDetect": "YOLOv7 (IDetect head)",
    "IAuxDetect": "YOLOv7 (IAuxDetect head)",
    "IKeypoint": "YOLOv7 pose (IKeypoint head)",
    "Segment": "segmentation (Segment head)",
    "ISegment": "YOLOv7 segmentation (ISegment head)",
    "DSegment": "YOLOv9 segmentation (DSegment head)",
    "DualDSegment": "YOLOv9 segmentation (DualDSegment head)",
    "Pose": "pose (Pose head)",
    "OBB": "oriented boxes (OBB head)",
    "Classify": "classification (Classify head)",
}


def open_source(
    spec: str | Path, options: SourceOptions | None = None, names: list[str] | None = None, **flat
) -> SourceModel:
    """A SourceModel from a checkpoint file or a built-in architecture name.

    `options` (or its fields as keywords: ``open_source("yolo26n.pt", topk="runtime")``) choose the output
    form; `names` replaces the class names (same count required). Raises EdgekitError when the file is
    missing, is no checkpoint, or holds a model no family reads (the message names what it holds).
    """
    options = replace(options or SourceOptions(), **flat)
    source = _open(spec, options)
    if names is not None:
        check_class_count(len(names), len(source.classes), "class names given")
        source.classes = list(names)
    return source


def _open(spec: str | Path, options: SourceOptions) -> SourceModel:
    path = Path(spec)
    if is_artifact(path):
        raise EdgekitError(
            f"{path.name} is already a model edgekit runs (edgekit predict {spec}); convert takes a training "
            "checkpoint (.pt/.pth) or an architecture name"
        )
    if path.is_file():
        ckpt = load_checkpoint(path)
        for family in FAMILIES:
            if family.recognises(ckpt, options):
                source = family.load(ckpt, options)
                source.train_imgsz = ckpt.training_size()
                return source
        raise EdgekitError(f"{path.name}: {describe(ckpt)}, which edgekit does not convert")
    name = str(spec)
    for family in FAMILIES:
        if family.build is not None and name in family.archs:
            source = family.build(name, options)
            source.random_weights = True
            return source
    if path.suffix or "/" in name:
        raise EdgekitError(f"checkpoint not found: {spec}")
    known = ", ".join(a for f in FAMILIES for a in f.archs)
    raise EdgekitError(f"'{spec}' is neither a checkpoint file nor a known architecture ({known})")


def describe(ckpt: Checkpoint) -> str:
    """What a checkpoint no family reads holds, in words (the pickled class, its head, or its keys)."""
    record = pickled_model(ckpt)
    if record is not None:
        head = head_block(model_yaml(record))
        what = FOREIGN_HEADS.get(head)
        if what is None and head:
            what = f"a '{head}' head"
        return f"a pickled {record._full_name}" + (f": {what}" if what else "")
    data = ckpt.data
    if isinstance(data, dict):
        from edgekit.converters.families.base import state_dict_of

        if state_dict_of(ckpt) is not None:
            return "a state_dict of an architecture edgekit does not recognise"
        keys = ", ".join(map(str, list(data)[:8])) or "empty"
        return f"no pickled detection model inside (keys: {keys})"
    return f"no pickled detection model inside (keys: {type(data).__name__})"


__all__ = ["FAMILIES", "Family", "SourceOptions", "describe", "open_source"]
