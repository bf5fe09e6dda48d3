"""How close an artifact's outputs must be to its source's to count as the same model: the element-wise
tolerances (max absolute difference per output) of conversion-time verification and of the NCNN engine's
FP16-arithmetic check on the device.

Units are the contract's: boxes normalized 0..1 to the network input, scores as probabilities; the
``detections_*`` keys are the top-k rows of an end-to-end model matched to the source's anchors, and
``topk_unmatched`` counts rows that match no source (anchor, class) pair.
"""

from __future__ import annotations

FP32_TOLERANCE: dict[str, float] = {
    "boxes": 1e-3,
    "scores": 1e-4,
    "detections_boxes": 1e-3,
    "detections_scores": 1e-4,
    "topk_unmatched": 0,
}
FP16_TOLERANCE: dict[str, float] = {
    "boxes": 1e-2,
    "scores": 1e-2,
    "detections_boxes": 1e-2,
    "detections_scores": 1e-2,
    "topk_unmatched": 0,
}
