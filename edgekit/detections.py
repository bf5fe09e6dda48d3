"""The Detections result type: one image's boxes, scores, class ids and class names, from decode to metrics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError


@dataclass
class Detections:
    """Detections of one image: ``xyxy`` [N, 4] float32 (x1, y1, x2, y2), ``confidence`` [N] float32,
    ``class_id`` [N] int64; ``names`` the model's classes, ``image_size`` (height, width) of the source image.

    The one box set of edgekit, in the style of supervision's ``Detections``. Its coordinate frame is the
    producer's: what a Detector (``edgekit.load(...)(image)``) and ``decode.decode_outputs`` return is in
    source-image pixels, clipped to the image, with names and image size; what the lower-level
    ``decode.decode_*`` functions return is in the network's frame (normalized 0..1 or input pixels, as the
    artifact's ``outputs.normalized`` says), without names or size. Ground truth (``LabeledImage.truth``)
    is in source pixels with confidence 1; the metrics read boxes, classes and, for predictions, confidence.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    names: Sequence[str] = field(default_factory=list)
    image_size: tuple[int, int] | None = None  # (height, width) of the source image

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if not len(self.xyxy) == len(self.confidence) == len(self.class_id):
            raise ValueError(
                f"Detections fields differ in length: xyxy {len(self.xyxy)}, confidence {len(self.confidence)}, "
                f"class_id {len(self.class_id)}"
            )

    @classmethod
    def empty(cls, names: Sequence[str] = (), image_size: tuple[int, int] | None = None) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), names, image_size)

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Detections:
        """Select detections by index, slice, or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.names, self.image_size)

    def __iter__(self):
        for i in range(len(self)):
            yield self.xyxy[i], float(self.confidence[i]), int(self.class_id[i])

    @property
    def labels(self) -> list[str]:
        """The class name of each detection (``class<id>`` where no name is known)."""
        return [self.names[c] if 0 <= c < len(self.names) else f"class{c}" for c in self.class_id.tolist()]

    @property
    def area(self) -> np.ndarray:
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def filter(
        self,
        conf: float | None = None,
        classes: Iterable[int | str] | None = None,
        min_area: float | None = None,
    ) -> Detections:
        """Keep detections at or above `conf`, in `classes` (ids or names), at least `min_area` px²."""
        keep = np.ones(len(self), bool)
        if conf is not None:
            keep &= self.confidence >= conf
        if classes is not None:
            keep &= np.isin(self.class_id, class_ids(classes, self.names))
        if min_area is not None:
            keep &= self.area >= min_area
        return self[keep]

    def counts(self) -> dict[str, int]:
        """Detections per class name, most frequent first."""
        names, counts = np.unique(np.asarray(self.labels, dtype=object), return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {str(names[i]): int(counts[i]) for i in order}

    def to_list(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per detection."""
        return [
            {
                "class_id": int(c),
                "label": label,
                "confidence": round(float(s), 5),
                "xyxy": [round(float(v), 2) for v in box],
            }
            for box, s, c, label in zip(self.xyxy, self.confidence, self.class_id, self.labels)
        ]

    def to_json(self, **extra: Any) -> str:
        """JSON object with the image size, the detections, and any `extra` fields."""
        doc: dict[str, Any] = dict(extra)
        if self.image_size is not None:
            doc["image_size"] = {"height": self.image_size[0], "width": self.image_size[1]}
        doc["detections"] = self.to_list()
        return json.dumps(doc)

    def draw(self, image: np.ndarray, *, thickness: int | None = None, labels: bool = True) -> np.ndarray:
        """A copy of the BGR `image` with boxes and labels drawn."""
        import cv2

        canvas = image.copy()
        h, w = canvas.shape[:2]
        thickness = thickness or max(1, round((h + w) / 600))
        scale = max(0.4, thickness / 3)
        for box, score, cls, label in zip(self.xyxy, self.confidence, self.class_id, self.labels):
            color = class_color(int(cls))
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            if not labels:
                continue
            text = f"{label} {score:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness - 1))
            top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
            cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1)
            ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
            cv2.putText(
                canvas,
                text,
                (x1 + 1, top + th + 1),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                ink,
                max(1, thickness - 1),
                cv2.LINE_AA,
            )
        return canvas


_PALETTE = [
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
    (147, 69, 52),
    (255, 115, 100),
    (236, 24, 0),
    (255, 56, 132),
    (133, 0, 82),
    (255, 56, 203),
    (200, 149, 255),
    (199, 55, 255),
]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` [N, 4] with every box in `b` [M, 4] (x1, y1, x2, y2, any
    unit): [N, M] float64, 0 where boxes do not overlap or where both have no area. The one IoU of the
    metrics, the confusion matrix, the artifact checks and the scene generator (NMS keeps its own, exact and
    vectorized over candidate pairs: runtimes/nms.py)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def class_color(class_id: int) -> tuple[int, int, int]:
    """A fixed BGR colour per class id."""
    return _PALETTE[class_id % len(_PALETTE)]


def class_ids(classes: Iterable[int | str], names: Sequence[str]) -> list[int]:
    """Turn class ids or names into ids; an unknown name or an id outside 0..len(names)-1 raises EdgekitError
    naming it."""
    lookup = {n: i for i, n in enumerate(names)}
    ids = []
    for c in classes:
        if isinstance(c, (int, np.integer)) or (isinstance(c, str) and c.strip().isdigit()):
            if not 0 <= int(c) < len(names):
                raise EdgekitError(
                    f"class id {int(c)} is out of range: this model has {len(names)} classes (0..{len(names) - 1})"
                )
            ids.append(int(c))
        elif c in lookup:
            ids.append(lookup[c])
        else:
            raise EdgekitError(
                f"unknown class {c!r}; this model knows: {', '.join(names[:20])}" + (" ..." if len(names) > 20 else "")
            )
    return ids
