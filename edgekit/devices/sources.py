"""Where frames come from: an image, a folder of images, a video file, or a camera index."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgekit.errors import EdgekitError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts"}


@dataclass
class Frame:
    """One BGR uint8 image and where it came from."""

    image: np.ndarray
    name: str
    index: int


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 BGR uint8; a missing or undecodable file raises EdgekitError."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EdgekitError(f"cannot decode image: {path}")
    return image


def as_image(image: np.ndarray) -> np.ndarray:
    """Check an image array and return it as HxWx3 uint8 (grayscale is expanded, alpha dropped)."""
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


class Source:
    """Iterates the frames of a path or camera; `kind` is image, folder, video or camera."""

    def __init__(self, spec: str | Path | int):
        self.spec = spec
        self.fps: float | None = None
        text = str(spec)
        path = Path(text)
        if isinstance(spec, int) or text.isdigit():
            self.kind, self.index = "camera", int(text)
        elif path.is_dir():
            self.kind = "folder"
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise EdgekitError(f"no images in folder: {path}")
        elif not path.exists():
            raise EdgekitError(f"source not found: {path}")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind = "image"
        else:
            raise EdgekitError(
                f"unsupported source type '{path.suffix}': give an image, a folder of images, a video or a camera index"
            )
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "image":
            yield Frame(read_image(self.spec), Path(self.spec).name, 0)
        elif self.kind == "folder":
            for i, file in enumerate(self.files):
                try:
                    image = read_image(file)
                except EdgekitError as exc:
                    print(f"edgekit: skipping {exc}", file=sys.stderr)
                    self.skipped.append(file.name)
                    continue
                yield Frame(image, file.name, i)
        else:
            yield from self._capture()

    def _capture(self) -> Iterator[Frame]:
        target = self.index if self.kind == "camera" else str(self.spec)
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            what = f"camera {self.index}" if self.kind == "camera" else f"video {self.spec}"
            raise EdgekitError(f"cannot open {what}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else 30.0
        stem = f"camera{self.index}" if self.kind == "camera" else Path(self.spec).name
        count = 0
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                yield Frame(image, f"{stem}#{count}", count)
                count += 1
        finally:
            cap.release()
        if count == 0:
            raise EdgekitError(f"no frames could be decoded from {stem}")
