"""Labelled detection datasets: a YOLO data.yaml (images/ + labels/ folders) or a COCO json with its images.

``load_dataset`` checks what it reads and names the file and line of the first problem::

    data = load_dataset("scenes/data.yaml", split="val")
    for item in data.items:
        image = cv2.imread(str(item.image))
        truth = item.truth(*image.shape[:2])   # Detections: xyxy [N, 4] pixels, class_id [N], confidence 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.detections import Detections
from edgekit.errors import EdgekitError, first_line
from edgekit.images import list_images
from edgekit.limits import (
    COCO_JSON_BYTES,
    DATASET_YAML_BYTES,
    LABEL_FILE_BYTES,
    parse_json,
    read_bytes,
    read_text,
)
from edgekit.logs import get_logger

log = get_logger("edgekit.eval")

EDGE_TOLERANCE = 0.01  # YOLO labels a hair outside 0..1 (rounding at the frame edge) are clipped, not refused


@dataclass
class LabeledImage:
    """One image and its objects: ``boxes`` [N, 4] normalized x1, y1, x2, y2 (0..1 of the image) and ``labels``
    [N] class ids."""

    image: Path
    boxes: np.ndarray
    labels: np.ndarray

    def pixel_boxes(self, height: int, width: int) -> np.ndarray:
        """The boxes in pixels of an image `height` x `width`, [N, 4] float32."""
        return (self.boxes * np.array([width, height, width, height], np.float32)).astype(np.float32)

    def truth(self, height: int, width: int) -> Detections:
        """The objects as Detections in pixels of an image `height` x `width`, each with confidence 1."""
        return Detections(self.pixel_boxes(height, width), np.ones(len(self.labels)), self.labels,
                          image_size=(height, width))


@dataclass
class Dataset:
    """A labelled split: class ``names``, its ``items``, where it came from, and how many images are
    backgrounds (no objects)."""

    names: list[str]
    items: list[LabeledImage] = field(default_factory=list)
    source: Path | None = None
    backgrounds: int = 0

    @property
    def instances(self) -> int:
        return int(sum(len(item.labels) for item in self.items))


def read_yaml(path: Path) -> dict:
    """A dataset yaml as a dict (PyYAML, or the block-style subset reader where PyYAML is absent)."""
    text = read_text(path, DATASET_YAML_BYTES, "a dataset yaml", errors="replace")
    try:
        import yaml
    except ImportError:  # the thin runtime carries no YAML library: block-style data.yaml files still read
        from edgekit.yaml_subset import parse_simple_yaml

        data = parse_simple_yaml(text)
    else:
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:
            raise EdgekitError(f"{path}: not a readable YAML file ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise EdgekitError(f"{path}: expected a YOLO dataset yaml (train/val image folders and names)")
    return data


def _names(raw, source: Path) -> list[str]:
    if isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise EdgekitError(f"{source}: 'names' keys must be class ids 0..N-1") from None
        if keys != list(range(len(keys))):
            raise EdgekitError(f"{source}: 'names' must number the classes 0..{len(keys) - 1} without gaps")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in keys]
    if isinstance(raw, list) and raw:
        return [str(n) for n in raw]
    raise EdgekitError(f"{source}: no class 'names' (a list, or a map from class id to name)")


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def read_yolo_labels(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 4] (normalized xyxy) and class ids [N] of one YOLO label file (``class cx cy w h`` lines).

    Raises EdgekitError naming the file and line of a malformed line, a class id outside 0..`num_classes`-1,
    or coordinates that are not normalized to 0..1 (NaN included); or naming the file when it is larger than
    LABEL_FILE_BYTES.
    """
    boxes, labels = [], []
    for number, line in enumerate(read_text(path, LABEL_FILE_BYTES, "a label file", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 5:
            raise EdgekitError(f"{where}: expected 'class cx cy w h', found {len(fields)} fields")
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise EdgekitError(f"{where}: not a label line ('class cx cy w h' numbers): {line.strip()[:60]}") from None
        if not 0 <= cls < num_classes:
            raise EdgekitError(f"{where}: class {cls} out of range (the dataset has {num_classes} classes)")
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        inside = all(-EDGE_TOLERANCE <= v <= 1 + EDGE_TOLERANCE for v in (x1, y1, x2, y2))  # False for NaN
        if not (w > 0 and h > 0 and inside):
            raise EdgekitError(f"{where}: box not normalized to 0..1 (cx cy w h = {cx:g} {cy:g} {w:g} {h:g})")
        boxes.append([x1, y1, x2, y2])
        labels.append(cls)
    box_array = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, 1)
    return box_array, np.asarray(labels, np.int64)


def images_of(entry, root: Path, source: Path) -> list[Path]:
    """The image files a yaml split entry names: folders (searched recursively), .txt lists, or lists of them."""
    images: list[Path] = []
    for item in entry if isinstance(entry, list) else [entry]:
        target = Path(str(item)) if Path(str(item)).is_absolute() else root / str(item)
        if target.is_dir():
            images += list_images(target)
        elif target.suffix == ".txt" and target.is_file():
            for line in target.read_text().splitlines():
                if line.strip():
                    candidate = Path(line.strip())
                    images.append(candidate if candidate.is_absolute() else root / candidate)
        else:
            raise EdgekitError(f"{source}: image folder not found: {target}")
    return images


def dataset_root(data: dict, path: Path) -> Path:
    """The folder a yaml's image entries are relative to: its ``path`` (itself relative to the yaml's folder),
    else the yaml's own folder (as Ultralytics reads a yaml without ``path``)."""
    root = Path(str(data["path"])) if data.get("path") else Path(".")
    return root if root.is_absolute() else (path.parent / root).resolve()


def _from_yolo(path: Path, split: str) -> Dataset:
    data = read_yaml(path)
    names = _names(data.get("names"), path)
    root = dataset_root(data, path)
    if not data.get(split):
        found = [s for s in ("train", "val", "test") if data.get(s)]
        raise EdgekitError(f"{path}: no '{split}' split (it has: {', '.join(found) or 'none'})")
    dataset = Dataset(names, source=path)
    for image in images_of(data[split], root, path):
        if not image.is_file():
            raise EdgekitError(f"{path}: image not found: {image}")
        label = _label_path(image)
        if label.is_file():
            boxes, labels = read_yolo_labels(label, len(names))
        else:
            boxes, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        dataset.backgrounds += int(len(labels) == 0)
        dataset.items.append(LabeledImage(image, boxes, labels))
    return dataset


def _read_coco(path: Path) -> dict:
    data = parse_json(read_bytes(path, COCO_JSON_BYTES, "a COCO annotation file"), f"{path}: a COCO annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise EdgekitError(f"{path}: expected a COCO annotation file with 'images', 'annotations', 'categories'")
    return data


def _is_number(value, positive: bool = False) -> bool:
    """A finite JSON number (not a bool), above zero with `positive`."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return value > 0 if positive else True


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def coco_image_folders(path: Path, images_dir: str | Path | None = None) -> list[Path]:
    """Where the images of COCO json `path` are looked for: `images_dir` when given, else beside the json,
    in ``images/``, one folder up, and in the split's folder (``annotations/instances_val2017.json`` ->
    ``val2017/`` or ``images/val2017/``), in that order."""
    if images_dir is not None:
        return [Path(images_dir)]
    bases = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images"]
    split = path.stem.split("_")[-1]
    return [*bases, path.parent.parent / split, path.parent.parent / "images" / split]


def _find_coco_image(path: Path, name: str, bases: list[Path]) -> Path:
    found = next((b / name for b in bases if (b / name).is_file()), None)
    if found is None:
        raise EdgekitError(f"{path}: image '{name}' not found (looked in {', '.join(str(b) for b in bases[:3])})")
    return found


def coco_images(spec: str | Path, images_dir: str | Path | None = None) -> list[Path]:
    """The image files a COCO json lists (labels are not read: calibration needs only the images), found as
    `load_dataset` finds them. Raises EdgekitError for an unreadable json or an image that is not found."""
    path = Path(spec)
    data = _read_coco(path)
    bases = coco_image_folders(path, images_dir)
    names = [e.get("file_name") for e in data["images"] if isinstance(e, dict)]
    return [_find_coco_image(path, name, bases) for name in names if name and isinstance(name, str)]


def _coco_categories(path: Path, data: dict) -> list[dict]:
    found = data.get("categories") or []
    categories = [c for c in found if isinstance(c, dict) and "id" in c] if isinstance(found, list) else []
    if not categories:
        raise EdgekitError(f"{path}: no 'categories'")
    bad = next((c["id"] for c in categories if not isinstance(c["id"], int) or isinstance(c["id"], bool)), None)
    if bad is not None:
        raise EdgekitError(f"{path}: category id {str(bad)[:40]} is not an integer")
    return sorted(categories, key=lambda c: c["id"])


def _coco_box(path: Path, ann: dict, w: float, h: float) -> list[float]:
    """One annotation's bbox (x, y, width, height pixels) as normalized x1, y1, x2, y2."""
    box = ann["bbox"]
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise EdgekitError(f"{path}: annotation of image {str(ann['image_id'])[:40]}: bbox {str(box)[:60]} is not"
                           " [x, y, width, height] numbers")
    x, y, bw, bh = (float(v) for v in box)
    return [x / w, y / h, (x + bw) / w, (y + bh) / h]


def _from_coco(path: Path, images_dir: str | Path | None) -> Dataset:
    data = _read_coco(path)
    categories = _coco_categories(path, data)
    index = {c["id"]: i for i, c in enumerate(categories)}
    names = [str(c.get("name", c["id"])) for c in categories]
    bases = coco_image_folders(path, images_dir)
    per_image: dict = {}
    annotations = data.get("annotations") or []
    for number, ann in enumerate(annotations if isinstance(annotations, list) else [None]):
        if not isinstance(ann, dict) or "bbox" not in ann or not _is_id(ann.get("image_id")):
            raise EdgekitError(f"{path}: annotation #{number} has no bbox or image_id")
        category = ann.get("category_id")
        if not isinstance(category, int) or category not in index:
            raise EdgekitError(f"{path}: annotation #{number}: category_id {str(category)[:40]} is not in categories")
        per_image.setdefault(ann["image_id"], []).append(ann)
    dataset = Dataset(names, source=path)
    for entry in data["images"]:
        name = entry.get("file_name") if isinstance(entry, dict) else None
        sized = isinstance(entry, dict) and all(_is_number(entry.get(k), True) for k in ("width", "height"))
        if not isinstance(name, str) or not name or not sized:
            raise EdgekitError(f"{path}: image entry without file_name, width and height: {str(entry)[:80]}")
        found = _find_coco_image(path, name, bases)
        w, h = float(entry["width"]), float(entry["height"])
        boxes, labels = [], []
        image_id = entry.get("id")
        for ann in per_image.get(image_id, []) if _is_id(image_id) else []:
            if ann.get("iscrowd"):
                continue
            boxes.append(_coco_box(path, ann, w, h))
            labels.append(index[ann["category_id"]])
        box_array = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, 1)
        dataset.backgrounds += int(not labels)
        dataset.items.append(LabeledImage(found, box_array, np.asarray(labels, np.int64)))
    return dataset


def load_dataset(spec: str | Path, split: str = "val", images: str | Path | None = None) -> Dataset:
    """A labelled split from a YOLO data.yaml (`split` picks train/val/test) or a COCO json (`images`: its
    image folder, else looked for beside the json).

    Raises EdgekitError (one line, naming the file and line where there is one) for a missing or unreadable
    file, a missing image folder, malformed or out-of-range labels, or a split without images.
    """
    path = Path(spec)
    if not path.is_file():
        raise EdgekitError(f"dataset not found: {path}" if not path.exists() else f"not a dataset file: {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        dataset = _from_yolo(path, split)
    elif path.suffix.lower() == ".json":
        dataset = _from_coco(path, images)
    else:
        raise EdgekitError(f"a dataset is a YOLO data.yaml or a COCO json: {path}")
    if not dataset.items:
        raise EdgekitError(f"{path}: the {split} split has no images")
    if dataset.backgrounds:
        log.warning(f"{dataset.backgrounds} of {len(dataset.items)} images have no labels (used as backgrounds)")
    return dataset
