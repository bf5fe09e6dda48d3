"""Small pieces every camera loop needs: a frame-rate meter, a status line drawn on frames, and a video
writer that is finalized (playable) however the loop ends, Ctrl-C included."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.fileio import atomic_path


class FpsMeter:
    """Frames per second over a sliding window of the last `window` frames."""

    def __init__(self, window: int = 30):
        self.window = window
        self._times: list[float] = []
        self.frames = 0

    def tick(self) -> float:
        """Count one frame now; returns the current rate."""
        self._times.append(time.perf_counter())
        self._times = self._times[-(self.window + 1) :]
        self.frames += 1
        return self.fps

    @property
    def fps(self) -> float:
        """The current rate (0 until two frames were counted)."""
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


def draw_status(image: np.ndarray, text: str) -> np.ndarray:
    """Draw a one-line status (FPS, counts) in the top-left corner, in place; returns the image."""
    scale = max(0.5, image.shape[0] / 720)
    thick = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(image, (0, 0), (w + 12, h + base + 12), (0, 0, 0), -1)
    cv2.putText(image, text, (6, h + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


class VideoOut:
    """An MP4 written to a temporary file and renamed onto `path` when closed: a run that stops for any
    reason (end of input, Ctrl-C) leaves a finalized, playable video, and an error leaves none."""

    def __init__(self, writer: cv2.VideoWriter, tmp: Path):
        self.writer, self.tmp, self.frames = writer, tmp, 0

    def write(self, image: np.ndarray) -> None:
        """Append one BGR frame."""
        self.writer.write(image)
        self.frames += 1


@contextlib.contextmanager
def video_out(path: str | Path, fps: float, size: tuple[int, int]) -> Iterator[VideoOut]:
    """Open an MP4 writer (mp4v) for frames of `size` (width, height); see VideoOut."""
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise EdgekitError(f"cannot write a video to {path}")
        out = VideoOut(writer, tmp)
        try:
            yield out
        finally:
            writer.release()
