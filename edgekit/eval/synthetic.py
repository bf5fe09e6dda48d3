"""A synthetic detection dataset of circles, squares and triangles on cluttered backgrounds.

It needs no download, so the demo model can be trained, calibrated and evaluated anywhere, and tests
have real images with exact ground truth. Rendering is deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgekit.detections import box_iou

CLASSES = ("circle", "square", "triangle")


@dataclass
class Sample:
    """One rendered image (BGR uint8) with its boxes (x1,y1,x2,y2 pixels) and class ids."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth gradient between random corner colours, with noise and a few thin distractor lines."""
    corners = rng.uniform(0, 255, (2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    sigma = rng.uniform(2, 12)
    noise = rng.normal(0, sigma, ((h + 1) // 2, (w + 1) // 2, 3)).astype(np.float32)
    image += cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, 6)):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(image, p1, p2, tuple(int(c) for c in rng.uniform(0, 255, 3)), int(rng.integers(1, 3)), cv2.LINE_AA)
    return image


def _contrasting_color(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    for _ in range(20):
        color = rng.uniform(0, 255, 3)
        if np.abs(color - under).sum() > 150:
            break
    return tuple(int(c) for c in color)


def render(rng: np.random.Generator, height: int, width: int, max_objects: int = 6) -> Sample:
    """Render one image of `height` x `width` with 1..`max_objects` shapes."""
    image = _background(rng, height, width)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    short = min(height, width)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(10):
            cls = int(rng.integers(len(CLASSES)))
            size = rng.uniform(0.08, 0.4) * short
            cx, cy = rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2)
            if cls == 0:
                r = size / 2
                points = None
                box = np.array([cx - r, cy - r, cx + r, cy + r])
            elif cls == 1:
                half = size / 2
                angle = rng.uniform(0, np.pi / 2) if rng.uniform() < 0.3 else 0.0
                corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
                rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                points = corners @ rot.T + [cx, cy]
            else:
                start = rng.uniform(0, 2 * np.pi)
                angles = start + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.normal(0, 0.15, 3)
                points = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], 1)
            if points is not None:
                box = np.concatenate([points.min(0), points.max(0)])
            box = np.clip(box, 0, [width, height, width, height])
            if (box[2] - box[0]) < 6 or (box[3] - box[1]) < 6:
                continue
            if len(boxes) and box_iou(box, np.array(boxes)).max() > 0.1:
                continue
            under = image[int(cy) % height, int(cx) % width].astype(np.float32)
            color = _contrasting_color(rng, under)
            if cls == 0:
                cv2.circle(
                    image,
                    (int(round(cx * 16)), int(round(cy * 16))),
                    int(round(r * 16)),
                    color,
                    -1,
                    cv2.LINE_AA,
                    shift=4,
                )
            else:
                cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], color, cv2.LINE_AA, shift=4)
            boxes.append(box)
            labels.append(cls)
            break
    return Sample(image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64))


def sample_size(rng: np.random.Generator, low: int = 200, high: int = 640) -> tuple[int, int]:
    """A random (height, width) with aspect ratios between 1:2 and 2:1."""
    h = int(rng.integers(low, high))
    w = int(np.clip(h * rng.uniform(0.5, 2.0), low, high))
    return h, w


def write_yolo_dataset(root: str | Path, count: int, seed: int = 0) -> Path:
    """Write `count` images with YOLO-format labels and a data.yaml; return the yaml path."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = sample_size(rng)
        sample = render(rng, h, w)
        cv2.imwrite(str(root / "images" / f"{i:05d}.jpg"), sample.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines = []
        for (x1, y1, x2, y2), cls in zip(sample.boxes, sample.labels):
            lines.append(
                f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            )
        (root / "labels" / f"{i:05d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    yaml_path = root / "data.yaml"
    yaml_path.write_text(f"path: {root.resolve()}\ntrain: images\nval: images\nnames:\n{names}\n")
    return yaml_path
