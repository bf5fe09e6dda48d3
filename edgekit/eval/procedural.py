"""Procedural detection scenes: six shape classes on photo-like textured backgrounds.

The data the family fixtures are trained and evaluated on. Deterministic for a seed; no download.
Objects range from about 8 px to half the frame, are rotated and stretched, filled flat or with a
gradient, partly occluded by each other and by clutter (no object keeps less than 60 % of its pixels
visible; its box is the whole object's). Images are blurred, noised and JPEG-compressed at random.

``write_dataset`` writes the YOLO layout (``images/<split>``, ``labels/<split>``, ``data.yaml`` with names)
and a COCO json of the val split (``annotations/instances_val.json``)::

    from edgekit.eval.procedural import write_dataset
    write_dataset("scenes", {"train": 4000, "val": 200, "test": 300}, seed=0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("circle", "square", "triangle", "star", "cross", "ring")
MIN_VISIBLE = 0.6


@dataclass
class Scene:
    """One rendered image (BGR uint8 [H, W, 3]) with boxes [N, 4] (x1, y1, x2, y2 pixels) and class ids [N]."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int = 5) -> np.ndarray:
    """Multi-octave value noise in 0..1, [H, W] float32."""
    out = np.zeros((h, w), np.float32)
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        grid = rng.uniform(0, 1, (cells + 1, cells + 1)).astype(np.float32)
        out += amplitude * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= rng.uniform(0.45, 0.7)
    out /= total
    return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured, photo-like background: coloured fractal noise, soft blobs, lines and grain."""
    palette = rng.uniform(0, 255, (3, 3)).astype(np.float32)
    a, b = _fractal(rng, h, w)[..., None], _fractal(rng, h, w, 3)[..., None]
    image = palette[0] * (1 - a) + palette[1] * a
    image = image * (1 - 0.5 * b) + palette[2] * 0.5 * b
    if rng.uniform() < 0.5:  # stripes or tiles, like floors, fabric and walls
        period = rng.uniform(6, 40)
        angle = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        wave = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
        image += (wave * rng.uniform(5, 30))[..., None]
    for _ in range(int(rng.integers(0, 5))):  # soft blobs
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(10, max(11, w // 2))), int(rng.integers(10, max(11, h // 2))))
        layer = np.zeros((h, w), np.float32)
        cv2.ellipse(layer, center, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(5, 20))[..., None]
        image = image * (1 - 0.6 * layer) + rng.uniform(0, 255, 3) * 0.6 * layer
    image += rng.normal(0, rng.uniform(2, 10), (h, w, 1)).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 7))):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        color = tuple(int(c) for c in rng.uniform(0, 255, 3))
        cv2.line(image, p1, p2, color, int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def _star(rng: np.random.Generator) -> np.ndarray:
    points = int(rng.integers(5, 7))
    inner = rng.uniform(0.38, 0.5)
    angles = np.arange(2 * points) * np.pi / points
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)


def _cross() -> np.ndarray:
    t = 0.3
    return np.array(
        [[-t, -1], [t, -1], [t, -t], [1, -t], [1, t], [t, t], [t, 1], [-t, 1], [-t, t], [-1, t], [-1, -t], [-t, -t]]
    )


def _outline(cls: int, rng: np.random.Generator) -> np.ndarray | None:
    """Unit-radius polygon of a class (None for the round classes)."""
    if cls == 1:
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) / np.sqrt(2) * 1.0
    if cls == 2:
        angles = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.normal(0, 0.12, 3) - np.pi / 2
        return np.stack([np.cos(angles), np.sin(angles)], 1)
    if cls == 3:
        return _star(rng)
    if cls == 4:
        return _cross()
    return None


def _object_mask(
    rng: np.random.Generator, cls: int, h: int, w: int, size: float, cx: float, cy: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The object's mask [H, W] uint8 and its exact box, or None when it falls outside the frame."""
    mask = np.zeros((h, w), np.uint8)
    stretch = rng.uniform(0.75, 1.33)
    sx, sy = size / 2 * stretch, size / 2 / stretch
    if cls in (0, 5):
        center = (int(round(cx * 16)), int(round(cy * 16)))
        axes = (int(round(sx * 16)), int(round(sy * 16)))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
        if cls == 5:
            ratio = rng.uniform(0.45, 0.65)
            inner = (int(round(sx * ratio * 16)), int(round(sy * ratio * 16)))
            cv2.ellipse(mask, center, inner, 0, 0, 360, 0, -1, cv2.LINE_AA, shift=4)
        box = np.array([cx - sx, cy - sy, cx + sx, cy + sy])
    else:
        unit = _outline(cls, rng) * [sx, sy]
        angle = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = unit @ rot.T + [cx, cy]
        cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        box = np.concatenate([points.min(0), points.max(0)])
    box = np.clip(box, 0, [w, h, w, h])
    if box[2] - box[0] < 4 or box[3] - box[1] < 4:
        return None
    return mask, box


def _fill(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, box: np.ndarray) -> None:
    """Paint `mask` onto `image` in a colour that stands out from what lies under it, flat or graded."""
    alpha = (mask.astype(np.float32) / 255)[..., None]
    under = image[mask > 127].reshape(-1, 3).mean(0) if (mask > 127).any() else image.reshape(-1, 3).mean(0)
    for _ in range(20):
        color = rng.uniform(0, 255, 3)
        if np.abs(color - under).sum() > 160:
            break
    h, w = mask.shape
    paint = np.empty((h, w, 3), np.float32)
    paint[:] = color
    if rng.uniform() < 0.4:  # a lighting gradient across the object
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        span = max(box[2] - box[0], box[3] - box[1], 1)
        ramp = ((xs - box[0]) * rng.uniform(-1, 1) + (ys - box[1]) * rng.uniform(-1, 1)) / span
        paint += (ramp * rng.uniform(20, 70))[..., None]
    if rng.uniform() < 0.3:  # an outline
        edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        paint[edge > 0] *= 0.3
    out = image.astype(np.float32) * (1 - alpha) + np.clip(paint, 0, 255) * alpha
    image[:] = out.astype(np.uint8)


def _object_size(rng: np.random.Generator, short: int) -> float:
    """Object size in pixels: a quarter small (8..20 px), the rest log-uniform up to half the frame."""
    if rng.uniform() < 0.25:
        return float(rng.uniform(8, 20))
    return float(np.exp(rng.uniform(np.log(20), np.log(max(21, short * 0.5)))))


def _visible_enough(owners: np.ndarray, covered: np.ndarray, areas: list[int]) -> bool:
    """Would covering `covered` leave every placed object at least MIN_VISIBLE of its pixels?"""
    hit = owners[covered]
    hit = hit[hit >= 0]
    if not hit.size:
        return True
    lost = np.bincount(hit, minlength=len(areas))
    visible = np.bincount(owners[owners >= 0], minlength=len(areas)) - lost
    return bool(np.all(visible[lost > 0] >= MIN_VISIBLE * np.asarray(areas)[lost > 0]))


def render_scene(rng: np.random.Generator, height: int, width: int, max_objects: int = 12) -> Scene:
    """Render one scene of `height` x `width` pixels with 1..`max_objects` objects of CLASSES."""
    image = _background(rng, height, width)
    owners = np.full((height, width), -1, np.int32)  # which object each pixel shows
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    areas: list[int] = []
    short = min(height, width)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(8):
            cls = int(rng.integers(len(CLASSES)))
            size = _object_size(rng, short)
            cx, cy = rng.uniform(size / 3, width - size / 3), rng.uniform(size / 3, height - size / 3)
            made = _object_mask(rng, cls, height, width, size, cx, cy)
            if made is None:
                continue
            mask, box = made
            solid = mask > 127
            area = int(solid.sum())
            if area < 24 or not _visible_enough(owners, solid, areas):
                continue
            _fill(rng, image, mask, box)
            owners[solid] = len(boxes)
            boxes.append(box)
            labels.append(cls)
            areas.append(area)
            break
    for _ in range(int(rng.integers(0, 4))):  # clutter in front: sticks and blobs that are no class
        layer = np.zeros((height, width), np.uint8)
        if rng.uniform() < 0.5:
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(layer, p1, p2, 255, int(rng.integers(2, 6)), cv2.LINE_AA)
        else:
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(3, 30)), int(rng.integers(3, 12)))
            cv2.ellipse(layer, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        if _visible_enough(owners, layer > 127, areas):
            owners[layer > 127] = -1
            _fill(rng, image, layer, np.array([0, 0, width, height], np.float64))
    image = _degrade(rng, image)
    return Scene(image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64))


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera faults: defocus or motion blur, sensor noise, JPEG compression."""
    roll = rng.uniform()
    if roll < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.6))
    elif roll < 0.35:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
    if rng.uniform() < 0.3:
        noisy = image.astype(np.float32) + rng.normal(0, rng.uniform(3, 12), image.shape)
        image = np.clip(noisy, 0, 255).astype(np.uint8)
    quality = int(rng.integers(30, 96))
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def scene_size(rng: np.random.Generator, low: int = 288, high: int = 416) -> tuple[int, int]:
    """A random (height, width): long side `low`..`high` px, aspect ratio between 3:4 and 4:3."""
    long_side = int(rng.integers(low, high + 1))
    short_side = int(long_side * rng.uniform(0.75, 1.0))
    return (long_side, short_side) if rng.uniform() < 0.5 else (short_side, long_side)


def yolo_lines(scene: Scene) -> list[str]:
    """The scene's labels as YOLO text lines (class cx cy w h, normalized)."""
    h, w = scene.image.shape[:2]
    return [
        f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
        for (x1, y1, x2, y2), cls in zip(scene.boxes.tolist(), scene.labels.tolist())
    ]


def write_dataset(root: str | Path, splits: dict[str, int], seed: int = 0) -> Path:
    """Render `splits` ({name: image count}) under `root` in the YOLO layout; return data.yaml's path.

    Each split has its own seed stream (``seed`` and the split's position), so growing one split leaves
    the others unchanged. The ``val`` split, when present, is also written as a COCO json.
    """
    root = Path(root)
    coco_images, coco_annotations = [], []
    for index, (split, count) in enumerate(splits.items()):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, index])
        for i in range(count):
            scene = render_scene(rng, *scene_size(rng))
            name = f"{split}_{i:05d}"
            cv2.imwrite(str(images / f"{name}.jpg"), scene.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines = yolo_lines(scene)
            (labels / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
            if split == "val":
                image_id = i + 1
                h, w = scene.image.shape[:2]
                coco_images.append({"id": image_id, "file_name": f"{name}.jpg", "height": h, "width": w})
                for (x1, y1, x2, y2), cls in zip(scene.boxes.tolist(), scene.labels.tolist()):
                    coco_annotations.append(
                        {
                            "id": len(coco_annotations) + 1,
                            "image_id": image_id,
                            "category_id": int(cls),
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "area": (x2 - x1) * (y2 - y1),
                            "iscrowd": 0,
                        }
                    )
    if "val" in splits:
        (root / "annotations").mkdir(exist_ok=True)
        categories = [{"id": i, "name": name} for i, name in enumerate(CLASSES)]
        coco = {"images": coco_images, "annotations": coco_annotations, "categories": categories}
        (root / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    entries = "".join(f"{split}: images/{split}\n" for split in splits)
    yaml_path = root / "data.yaml"
    yaml_path.write_text(f"{entries}names:\n{names}")
    return yaml_path
