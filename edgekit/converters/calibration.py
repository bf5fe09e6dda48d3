"""Calibration images for INT8: an image folder, a YOLO dataset yaml, or a COCO json.

The images are preprocessed exactly as the runtime will preprocess them (the artifact's own InputSpec),
so the activation ranges INT8 learns are the ones it will see.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.eval.datasets import coco_images, dataset_root, images_of, read_yaml
from edgekit.images import list_images, read_image
from edgekit.logs import get_logger
from edgekit.meta import InputSpec
from edgekit.runtimes.preprocess import preprocess

log = get_logger("edgekit.convert")

DEFAULT_SIZE = 300
FEW = 100


def _from_yolo_yaml(path: Path, split: str | None = None) -> list[Path]:
    data = read_yaml(path)
    entry = data.get(split) if split else (data.get("val") or data.get("train"))
    if not entry:
        raise EdgekitError(f"{path}: the dataset yaml names neither 'val' nor 'train' images")
    return images_of(entry, dataset_root(data, path), path)


def calibration_images(spec: str | Path, size: int = DEFAULT_SIZE, split: str | None = None) -> list[Path]:
    """Up to `size` image paths from a folder, a YOLO dataset yaml (its `split`, else val or train) or a COCO
    json (evenly spread)."""
    path = Path(spec)
    if not path.exists():
        raise EdgekitError(f"calibration data not found: {path}")
    if path.is_dir():
        images = list_images(path)
    elif path.suffix.lower() in (".yaml", ".yml"):
        images = _from_yolo_yaml(path, split)
    elif path.suffix.lower() == ".json":
        images = coco_images(path)
    else:
        raise EdgekitError(f"calibration data must be an image folder, a YOLO dataset yaml or a COCO json: {path}")
    if not images:
        raise EdgekitError(f"no images found in calibration data {path}")
    if len(images) > size:
        picks = np.linspace(0, len(images) - 1, size).round().astype(int)
        images = [images[i] for i in picks]
    if len(images) < FEW:
        log.warning(f"only {len(images)} calibration images; INT8 ranges are more reliable with {FEW} or more")
    return images


def calibration_tensors(
    images: list[Path], spec: InputSpec, imgsz: tuple[int, int], progress: bool = True
) -> Iterator[np.ndarray]:
    """Each image preprocessed as the runtime will, as a [1, ...] float32 tensor; a progress bar on stderr."""
    from tqdm import tqdm

    for path in tqdm(images, desc="calibration", unit="image", disable=not progress, file=sys.stderr, leave=False):
        tensor, _ = preprocess(read_image(path), spec, imgsz)
        yield tensor
