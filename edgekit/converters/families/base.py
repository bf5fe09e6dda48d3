"""What a family plug-in is: how it recognises a checkpoint and builds its SourceModel."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from edgekit.converters.source import SourceModel
from edgekit.models.checkpoint import Checkpoint, Record


@dataclass(frozen=True)
class SourceOptions:
    """How to open a source model: options only some families read (others ignore them)."""

    # end-to-end models: top-k in the graph ("graph"), in the runtime ("runtime"), or "auto": in the graph unless
    # a format of the conversion cannot hold it (convert_many decides; opened alone, "auto" is "graph")
    topk: str = "auto"
    nms: bool = False  # end-to-end models: export the one-to-many branch for NMS instead
    arch: str | None = None  # DAMO-YOLO: the variant of a state_dict, instead of recognising it from shapes
    keep_ratio: bool = False  # DAMO-YOLO: pre-v0.3.0 preprocessing (keep aspect ratio, pad bottom/right)


@dataclass(frozen=True)
class Family:
    """A family plug-in.

    `recognises` sees the loaded checkpoint (and the options) and answers whether this family reads it;
    `load` builds the SourceModel from it (raising EdgekitError for a variant it cannot convert);
    `archs` are the built-in architecture names `build` makes with seeded random weights.
    """

    name: str
    recognises: Callable[[Checkpoint, SourceOptions], bool]
    load: Callable[[Checkpoint, SourceOptions], SourceModel]
    archs: Collection[str] = ()
    build: Callable[[str, SourceOptions], SourceModel] | None = None


def pickled_model(ckpt: Checkpoint) -> Record | None:
    """The pickled model record of a whole-module checkpoint (``ema`` before ``model``), or None."""
    data = ckpt.data
    if isinstance(data, Record):
        return data
    if isinstance(data, dict):
        return next((data[k] for k in ("ema", "model") if isinstance(data.get(k), Record)), None)
    return None


def model_yaml(record: Record) -> dict[str, Any]:
    """The architecture dict a pickled YOLO-style model carries (empty when it has none)."""
    cfg = record.__dict__.get("yaml")
    return cfg if isinstance(cfg, dict) else {}


def head_block(cfg: dict[str, Any]) -> str:
    """The block name of a YOLO yaml's last layer (its head), or ''."""
    rows = list(cfg.get("head") or [])
    row = rows[-1] if rows else None
    return str(row[2]) if isinstance(row, (list, tuple)) and len(row) == 4 else ""


def state_dict_of(ckpt: Checkpoint) -> dict | None:
    """The tensors of a plain state_dict checkpoint (top level or under ``model``, DDP's ``module.`` prefix
    removed), or None when the checkpoint is not one."""
    import torch

    data = ckpt.data
    state = data.get("model") if isinstance(data, dict) and isinstance(data.get("model"), dict) else data
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return {str(k).removeprefix("module."): v for k, v in state.items()}
    return None
