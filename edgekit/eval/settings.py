"""The settings a detector is validated at, as the field reports mAP: one owner for `edgekit val`, the INT8
accuracy budget, the benchmark and the decode benchmark."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValSettings:
    """Decoding for mAP: every detection down to ``conf``, NMS at ``iou``, at most ``max_det`` per image, and
    NMS models decoded multi-label (every class of an anchor above ``conf`` is a candidate).

    These are Ultralytics' val defaults (conf 0.001, IoU 0.7, max_det 300, ``multi_label=True`` in its NMS
    for val) and YOLOv9's ``val.py`` (conf 0.001, IoU 0.7, max_det 300, multi-label); COCO's own evaluation
    counts up to ``max_det`` detections per image here instead of its default 100.
    """

    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    multi_label: bool = True


VAL = ValSettings()
