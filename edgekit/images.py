"""Reading images for every layer (runtimes, eval, converters, devices): which files are images, decoding one
file as BGR uint8, checking an array handed in by a caller, and listing the images under a folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgekit.errors import EdgekitError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm"})


def is_image_file(path: str | Path) -> bool:
    """True for a path whose suffix (any case) is one OpenCV decodes as a still image."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """The image files under `folder` (recursively by default), sorted by path."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_image_file(p) and p.is_file())


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 BGR uint8.

    Raises:
        EdgekitError: the file is missing or OpenCV cannot decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EdgekitError(f"cannot decode image: {path}")
    return image


def as_image(image: np.ndarray) -> np.ndarray:
    """Check an image array and return it as HxWx3 uint8 (grayscale is expanded to 3 channels, alpha dropped).

    Raises:
        EdgekitError: not a uint8 array of shape HxW, HxWx1, HxWx3 or HxWx4 with H, W >= 1.
    """
    if not isinstance(image, np.ndarray):
        raise EdgekitError(f"expected an image array or a path, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise EdgekitError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2 and min(image.shape) > 0:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise EdgekitError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)
