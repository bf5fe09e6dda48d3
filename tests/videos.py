"""Small real video files for source and example tests (mp4v, written by OpenCV)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgekit.assets import shapes_image


def level(index: int) -> int:
    """The grey level frame `index` carries in its marker block (readable after mp4v compression)."""
    return (index * 37) % 200 + 30


def write_marked_video(path: Path, frames: int = 12, size: tuple[int, int] = (160, 120), fps: float = 30.0) -> Path:
    """A video whose frame i is a flat grey of `level(i)`: frames can be told apart after decoding."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), level(i), np.uint8))
    writer.release()
    return path


def frame_index(image: np.ndarray, frames: int) -> int:
    """Which frame of a marked video this decoded image is."""
    value = float(image[10:-10, 10:-10].mean())
    return min(range(frames), key=lambda i: abs(level(i) - value))


def write_shapes_video(path: Path, frames: int = 30, fps: float = 15.0) -> Path:
    """The bundled shapes photo drifting a few pixels per frame: the demo model finds its shapes in every frame."""
    image = cv2.imread(str(shapes_image()))
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        shift = np.float32([[1, 0, (i % 10) - 5], [0, 1, 0]])
        writer.write(cv2.warpAffine(image, shift, (w, h), borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path
